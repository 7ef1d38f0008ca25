// MQTT commands: a JSON message on {tenant}/cmd/{tag} (config mqtt.commands.topic: a template with
// {tenant} ending in '#', whose match is the tag) asks to write a tag. The broker does not tell us who
// published, so a command proves it with a JWT checked exactly as REST checks one (scope `write`, the
// topic's tenant, the token's `tags`): the bridge gets that check as `authorize` from the composition
// root (server/services.ts), never importing server/. Per-tenant static tokens only with
// mqtt.commands.staticTokens: true. The actor recorded in the CmdFrame is `mqtt:<sub>` of the token.
// The message is checked (command-message.ts: not retained, publication time, life, id), the value is
// checked (storage/command-intake.ts: checkWrite), the command goes through the command bus with its real expiry (so the executor
// acks a command that waited past its life in a broker session `expired` and never writes it), and the
// result is published on {tenant}/ack/{tag}: {id, ok, status, code, error?, offset?}. Ids are scoped by
// tenant and actor: a redelivery (QoS 1) returns the first command's result; the same id with another
// tag or value is refused with `idempotency_conflict`.
import { createHash, timingSafeEqual } from "node:crypto";
import type { MqttClient } from "mqtt";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import type { CommandBus } from "../../storage/commands.ts";
import { answerCommand, recordCommand } from "../../storage/command-intake.ts";
import type { MqttNorthConfig } from "./config.ts";
import type { UplinkMetrics } from "./metrics.ts";
import { fillTopic } from "./topics.ts";
import { Answered, CommandRefused, commandExpiry, commandResult, parseCommand, refused, type CommandAnswer, type CommandAuthorizer, type PacketInfo } from "../../schemas/command-message.ts";

export type { CommandAnswer, CommandAuthorization, CommandAuthorizer } from "../../schemas/command-message.ts";

export interface MqttCommandsDeps {
  client: MqttClient;
  config: MqttNorthConfig;
  catalog: Catalog;
  bus: CommandBus;
  logger: Logger;
  metrics: UplinkMetrics;
  gatewayId: string;
  authorize?: CommandAuthorizer;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest();
/** Constant time whatever the lengths: the digests compared always have 32 bytes. */
const sameSecret = (a: string, b: string) => timingSafeEqual(sha256(a), sha256(b));

/** The subscription of each tenant, and the topic prefix before the tag (what '#' matches). */
export function commandFilters(cc: MqttNorthConfig["commands"], gatewayId: string): { tenant: string; filter: string; prefix: string }[] {
  return cc.tenants.map((tenant) => {
    const filter = fillTopic(cc.topic, { tenant, device: gatewayId });
    return { tenant, filter, prefix: filter.slice(0, -1) };
  });
}

/** The tenant and tag of a command topic, or null when it is not one of ours. */
function commandTopic(filters: readonly { tenant: string; prefix: string }[], topic: string): { tenant: string; tag: string } | null {
  for (const f of filters) if (topic.length > f.prefix.length && topic.startsWith(f.prefix)) return { tenant: f.tenant, tag: topic.slice(f.prefix.length) };
  return null;
}

/**
 * Who sent the command: a static token of the topic's tenant (only with staticTokens: true, compared
 * in constant time; actor `mqtt:tenant-token:<tenant>`), else a JWT checked by `authorize` (actor `mqtt:<sub>`).
 */
async function authenticate(cc: MqttNorthConfig["commands"], authorize: CommandAuthorizer | undefined, token: string | undefined, target: { tag: string; tenant: string }, id: string | null): Promise<string> {
  if (!token) throw refused(id, "unauthorized", "a token is required: MQTT 5 user property 'token' or 'authorization', or the payload's 'token'");
  const staticToken = cc.staticTokens ? cc.tokens[target.tenant] : undefined;
  if (staticToken !== undefined && sameSecret(token, staticToken)) return `mqtt:tenant-token:${target.tenant}`;
  if (!authorize) throw refused(id, "unauthorized", "the gateway has no auth keys (auth.hs256Secret or auth.jwksFile): JWT commands are refused");
  const verdict = await authorize(token, target);
  if (!verdict.ok) throw refused(id, verdict.code, verdict.reason);
  return `mqtt:${verdict.sub}`;
}

export function startMqttCommands(d: MqttCommandsDeps): { stop(): Promise<void> } {
  const cc = d.config.commands;
  const subs = commandFilters(cc, d.gatewayId);
  // retain as published (MQTT 5): a retained publication is flagged also when we are subscribed live
  const subscribe = () =>
    d.client.subscribe(
      subs.map((s) => s.filter),
      { qos: 1, ...(d.config.protocolVersion === 5 ? { rap: true } : {}) },
      (err) => {
        if (err) d.logger.error({ err: err.message, filters: subs.map((s) => s.filter) }, "mqtt commands: subscribe failed");
      },
    );
  // with a persistent session the broker keeps the subscription; subscribing again on connect is harmless
  d.client.on("connect", subscribe);
  if (d.client.connected) subscribe();
  if (!d.authorize && !cc.staticTokens) d.logger.warn("mqtt commands enabled but auth: configures no keys and staticTokens is off: every command is refused");

  const answer = (tenant: string, tag: string, a: CommandAnswer) => {
    d.metrics.commands.inc({ result: commandResult(a.code) });
    if (!d.client.connected) return;
    const topic = fillTopic(cc.ackTopic, { tenant, device: d.gatewayId, tag });
    d.client.publish(topic, JSON.stringify(a), { qos: 1 }, () => undefined);
  };

  /** Checks the command and executes it; the answer to publish. Throws Answered for a refusal. */
  const handle = async (tenant: string, tag: string, payload: Buffer, packet: PacketInfo): Promise<CommandAnswer> => {
    const receivedMs = Date.now();
    let body;
    try {
      body = parseCommand(payload, packet);
    } catch (e) {
      if (e instanceof CommandRefused) throw refused(e.id, e.code, e.message);
      throw e;
    }
    const id = body.id ?? null;
    const actor = await authenticate(cc, d.authorize, body.token, { tag, tenant }, id);
    const expiresAt = commandExpiry(body, packet, receivedMs, cc);
    const cmd = await recordCommand(d.bus, d.catalog, { origin: "mqtt", tenant, tag, value: body.value, clientId: body.id, actor, expiresAt });
    return await answerCommand(d.bus, cmd, body.id, cc.timeoutMs);
  };

  const onMessage = async (topic: string, payload: Buffer, packet: PacketInfo) => {
    const m = commandTopic(subs, topic);
    if (!m) return;
    try {
      answer(m.tenant, m.tag, await handle(m.tenant, m.tag, payload, packet));
    } catch (e) {
      if (e instanceof Answered) {
        d.logger.warn({ topic, code: e.answer.code }, `mqtt commands: command on ${topic} refused: ${e.answer.error}`);
        return answer(m.tenant, m.tag, e.answer);
      }
      d.logger.error({ err: e, topic }, "mqtt commands: submitting the command failed");
      answer(m.tenant, m.tag, { id: null, ok: false, status: "error", code: "internal_error", error: (e as Error).message });
    }
  };
  const listener = (topic: string, payload: Buffer, packet: unknown) => void onMessage(topic, payload, packet as PacketInfo).catch(() => undefined);
  d.client.on("message", listener);
  return {
    async stop() {
      d.client.off("message", listener);
      d.client.off("connect", subscribe);
    },
  };
}
