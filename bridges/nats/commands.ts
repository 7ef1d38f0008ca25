// Commands from the fleet (nats.commands): a durable JetStream pull consumer on this gateway's command
// subjects ({cmdPrefix}.{tenant}.{gateway}.cmd.{tag}, see subjects.ts). Each message is checked like an
// MQTT command (schemas/command-message.ts: JSON body, `ts` or `expiresAt`, life capped by maxTtlMs) and
// must carry an `id` and a JWT (header `Authorization: Bearer <jwt>`, else the body's `token`) checked
// as REST checks one (write scope, the subject's tenant, the token's tags). It becomes a CmdFrame with
// origin `nats` and actor `nats:<sub>` (storage/command-intake.ts), its answer is published on
// {cmdPrefix}.{tenant}.{gateway}.ack.{tag} (stored in the command stream, Nats-Msg-Id = the command's
// stream sequence, so an answer published twice is stored once), and only then is the JetStream message
// acked. A gateway that dies anywhere before that gets the message again after ackWaitMs: the command
// id (tenant, actor and client id, scoped) finds the first CmdFrame in the log, so the PLC is written at
// most once, and the answer is published from the AckFrame already in the log.
import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import { Answered, CommandRefused, commandExpiry, commandResult, parseCommand, refused, type CommandAnswer, type CommandAuthorizer, type PacketInfo } from "../../schemas/command-message.ts";
import type { CommandBus } from "../../storage/commands.ts";
import { answerCommand, recordCommand } from "../../storage/command-intake.ts";
import { backoffDelay, delay } from "../../storage/time.ts";
import type { NatsConfig } from "./config.ts";
import type { NatsMetrics } from "./metrics.ts";
import { commandConsumerSettings } from "./provision.ts";
import { answerSubject, parseCommandSubject } from "./subjects.ts";

export interface NatsCommandsDeps {
  config: NatsConfig;
  catalog: Catalog;
  bus: CommandBus;
  logger: Logger;
  metrics: NatsMetrics;
  gatewayId: string;
  authorize?: CommandAuthorizer;
  /** the JetStream client of the moment (null while connecting) */
  js: () => JetStreamClient | null;
}

export interface NatsCommands {
  stop(): Promise<void>;
  /** null when consuming, else why not (for the readiness document) */
  problem(): string | null;
}

/** A message whose recording failed for a reason of the gateway (log degraded): delivered again after this. */
const RETRY_DELIVERY_MS = 1000;

/** The message's token as an MQTT packet would carry it, so that parseCommand reads both origins alike. */
function packetOf(m: JsMsg): PacketInfo {
  const auth = m.headers?.get("Authorization") || undefined;
  return { retain: false, ...(auth ? { properties: { userProperties: { authorization: auth } } } : {}) };
}

export function startNatsCommands(d: NatsCommandsDeps): NatsCommands {
  const cc = d.config.commands;
  const stopping = new AbortController();
  const pending = new Set<Promise<void>>();
  let messages: ConsumerMessages | null = null;
  let problem: string | null = "not connected yet";
  if (!d.authorize) d.logger.warn("nats commands enabled but auth: configures no keys: every command is refused");

  /** Publishes the answer (stored once per command message), then acks the message. */
  const finish = async (m: JsMsg, where: { tenant: string; tag: string }, a: CommandAnswer) => {
    d.metrics.commands.inc({ result: commandResult(a.code) });
    const js = d.js();
    if (!js) throw new Error("not connected");
    const subject = answerSubject(cc.subjectPrefix, where.tenant, d.gatewayId, where.tag);
    await js.publish(subject, JSON.stringify(a), { msgID: `ack:${d.gatewayId}:${m.info.streamSequence}`, timeout: d.config.ackTimeoutMs });
    await m.ackAck();
  };

  /** Who sent the command: a JWT checked by `authorize` (actor `nats:<sub>`). */
  const authenticate = async (token: string | undefined, target: { tag: string; tenant: string }, id: string | null): Promise<string> => {
    if (!token) throw refused(id, "unauthorized", "a token is required: header 'Authorization: Bearer <jwt>' or the payload's 'token'");
    if (!d.authorize) throw refused(id, "unauthorized", "the gateway has no auth keys (auth.hs256Secret or auth.jwksFile): commands are refused");
    const verdict = await d.authorize(token, target);
    if (!verdict.ok) throw refused(id, verdict.code, verdict.reason);
    return `nats:${verdict.sub}`;
  };

  /** Checks and records one command (in delivery order); the rest (answer, ack) runs beside the next ones. */
  const take = async (m: JsMsg): Promise<void> => {
    const receivedMs = Date.now();
    const where = parseCommandSubject(cc.subjectPrefix, m.subject);
    if (!where) return void m.term(`not a command subject: ${m.subject}`);
    let id: string | null = null;
    try {
      const packet = packetOf(m);
      const body = (() => {
        try {
          return parseCommand(Buffer.from(m.data), packet);
        } catch (e) {
          throw e instanceof CommandRefused ? refused(e.id, e.code, e.message) : e;
        }
      })();
      id = body.id ?? null;
      // without an id a redelivered message could not be told from a new command
      if (body.id === undefined) throw refused(null, "invalid_payload", "id: required (a string of 1 to 200 characters): a redelivered command is recognised by it");
      const actor = await authenticate(body.token, where, id);
      const cmd = await recordCommand(d.bus, d.catalog, { origin: "nats", tenant: where.tenant, tag: where.tag, value: body.value, clientId: body.id, actor, expiresAt: commandExpiry(body, packet, receivedMs, cc) });
      background(m, where, () => answerCommand(d.bus, cmd, body.id, cc.timeoutMs));
    } catch (e) {
      if (e instanceof Answered) {
        d.logger.warn({ subject: m.subject, code: e.answer.code }, `nats commands: command on ${m.subject} refused: ${e.answer.error}`);
        return background(m, where, async () => e.answer);
      }
      // nothing recorded (the log refuses appends, ...): JetStream delivers it again, the answer waits
      d.logger.error({ err: (e as Error).message, subject: m.subject, id }, "nats commands: recording the command failed; it is delivered again");
      m.nak(RETRY_DELIVERY_MS);
    }
  };

  /** Waits for the answer (telling JetStream the message is being worked on), publishes it, acks. */
  const background = (m: JsMsg, where: { tenant: string; tag: string }, answer: () => Promise<CommandAnswer>) => {
    const working = setInterval(() => m.working(), Math.max(50, cc.ackWaitMs / 2));
    const p = answer()
      .then((a) => finish(m, where, a))
      .catch((e: Error) => {
        // not acked: delivered again after ackWaitMs, found in the log by its id, answered then
        d.logger.warn({ err: e.message, subject: m.subject }, "nats commands: answering failed; JetStream delivers the command again");
      })
      .finally(() => {
        clearInterval(working);
        pending.delete(p);
      });
    pending.add(p);
  };

  /** Consumes until stopped; a lost consumer or connection is found again with backoff. */
  const run = async () => {
    for (let attempt = 0; !stopping.signal.aborted; ) {
      const js = d.js();
      if (!js) {
        await delay(d.config.retryMinMs, stopping.signal);
        continue;
      }
      try {
        const consumer = await js.consumers.get(cc.stream, commandConsumerSettings(d.config, d.gatewayId).durable_name);
        messages = await consumer.consume({ max_messages: cc.maxAckPending });
        problem = null;
        attempt = 0;
        for await (const m of messages) {
          if (stopping.signal.aborted) break;
          await take(m);
        }
      } catch (e) {
        problem = `command consumer ${cc.stream}/${commandConsumerSettings(d.config, d.gatewayId).durable_name}: ${(e as Error).message}`;
        d.logger.error({ err: (e as Error).message }, `nats commands: ${problem}; retrying (edgectl nats provision creates it)`);
      }
      if (!stopping.signal.aborted) await delay(backoffDelay(++attempt, { initialMs: d.config.retryMinMs, maxMs: d.config.retryMaxMs }), stopping.signal);
    }
  };
  const running = run();

  return {
    problem: () => problem,
    async stop() {
      stopping.abort();
      await messages?.close().catch(() => undefined);
      await running;
      // answers being awaited are not acked: JetStream delivers them again to the next run
      await Promise.race([Promise.allSettled([...pending]), delay(d.config.ackTimeoutMs)]);
    },
  };
}
