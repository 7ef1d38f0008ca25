// MQTT commands: a JSON message on {tenant}/cmd/{tag} (config mqtt.commands.topic: a template with
// {tenant} ending in '#', whose match is the tag) asks to write a tag. The broker authenticates the
// client but does not tell us who it was, so a command must prove its tenant with the tenant's shared
// token (config mqtt.commands.tokens), as MQTT 5 user property `token` or JSON field `token`; the actor
// recorded in the CmdFrame is `mqtt:<actor>` (user property `actor`, field `actor`, else the tenant).
// The value is checked (checkWrite), submitted to the command bus, and the result is published on
// {tenant}/ack/{tag}: {id, ok, status, code, error?, offset?}, `code` the ack's code (schemas/acks.ts) or a
// refusal before the log (unauthorized, invalid_payload, refused_*); a timeout says the outcome is
// unknown. Commands are idempotent by id: a redelivery (QoS 1) of the same id returns the first
// command's result instead of writing twice.
import { timingSafeEqual } from "node:crypto";
import type { MqttClient } from "mqtt";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import { checkWrite } from "../../schemas/command.ts";
import { ACK_CODE_INFO, type AckCode } from "../../schemas/acks.ts";
import type { CommandBus } from "../../storage/commands.ts";
import type { MqttNorthConfig } from "./config.ts";
import type { UplinkMetrics } from "./metrics.ts";
import { fillTopic } from "./payload.ts";

export interface MqttCommandsDeps {
  client: MqttClient;
  config: MqttNorthConfig;
  catalog: Catalog;
  bus: CommandBus;
  logger: Logger;
  metrics: UplinkMetrics;
  gatewayId: string;
}

export interface CommandAnswer {
  id: string | null;
  ok: boolean;
  status: "ok" | "error" | "expired" | "timeout" | "refused";
  error?: string;
  /** an AckCode (schemas/acks.ts), or `unauthorized` / `invalid_payload` for a message refused before the check */
  code: AckCode | "unauthorized" | "invalid_payload" | "internal_error";
  offset?: number;
}

const sameSecret = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

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

export function startMqttCommands(d: MqttCommandsDeps): { stop(): Promise<void> } {
  const cc = d.config.commands;
  const subs = commandFilters(cc, d.gatewayId);
  const filters = subs.map((s) => s.filter);
  const subscribe = () =>
    d.client.subscribe(filters, { qos: 1 }, (err) => {
      if (err) d.logger.error({ err: err.message, filters }, "mqtt commands: subscribe failed");
    });
  // with a persistent session the broker keeps the subscription; subscribing again on connect is harmless
  d.client.on("connect", subscribe);
  if (d.client.connected) subscribe();

  const answer = (tenant: string, tag: string, a: CommandAnswer) => {
    d.metrics.commands.inc({ result: a.status });
    if (!d.client.connected) return;
    const topic = fillTopic(cc.ackTopic, { tenant, device: d.gatewayId, tag });
    d.client.publish(topic, JSON.stringify(a), { qos: 1 }, () => undefined);
  };

  const onMessage = async (topic: string, payload: Buffer, packet: { properties?: { userProperties?: Record<string, string | string[]> } }) => {
    const m = commandTopic(subs, topic);
    if (!m) return;
    const { tenant, tag } = m;
    let body: Record<string, unknown>;
    try {
      const parsed = JSON.parse(payload.toString("utf8")) as unknown;
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || !("value" in parsed)) throw new Error("expected an object with a 'value'");
      body = parsed as Record<string, unknown>;
    } catch (e) {
      d.logger.warn({ topic }, `mqtt commands: payload on ${topic} refused: ${(e as Error).message}`);
      return answer(tenant, tag, { id: null, ok: false, status: "refused", code: "invalid_payload", error: `payload is not a JSON command: ${(e as Error).message}` });
    }
    const up = packet.properties?.userProperties ?? {};
    const prop = (k: string) => (Array.isArray(up[k]) ? (up[k] as string[])[0] : (up[k] as string | undefined));
    const id = typeof body.id === "string" && body.id.length > 0 ? body.id : undefined;
    const token = prop("token") ?? (typeof body.token === "string" ? body.token : undefined);
    const expected = cc.tokens[tenant];
    if (!expected || !token || !sameSecret(token, expected)) {
      d.logger.warn({ topic, tenant }, `mqtt commands: command for '${tag}' refused: missing or wrong token for tenant '${tenant}'`);
      return answer(tenant, tag, { id: id ?? null, ok: false, status: "refused", code: "unauthorized", error: `no valid token for tenant '${tenant}'` });
    }
    const variable = d.catalog.get(tag);
    if (variable && variable.tenant !== tenant) {
      return answer(tenant, tag, { id: id ?? null, ok: false, status: "refused", code: "refused_unknown_tag", error: "no such tag" });
    }
    const checked = checkWrite(variable, body.value);
    if (!checked.ok) return answer(tenant, tag, { id: id ?? null, ok: false, status: "refused", code: `refused_${checked.code}` satisfies AckCode, error: checked.message });
    let ttlMs = typeof body.ttlMs === "number" && body.ttlMs > 0 ? body.ttlMs : cc.ttlMs;
    if (typeof body.expiresAt === "number") ttlMs = Math.max(0, body.expiresAt - Date.now());
    const actor = `mqtt:${prop("actor") ?? (typeof body.actor === "string" ? body.actor : tenant)}`;
    try {
      const { cmd, ack } = await d.bus.execute({ tag, value: checked.value, origin: "mqtt", actor, tenant, ttlMs, ...(id ? { id } : {}) }, cc.timeoutMs);
      if (!ack) {
        // the command is in the log and its driver may still execute it: nobody can tell yet
        const error = `no ack within ${cc.timeoutMs} ms: ${ACK_CODE_INFO.timeout_outcome_unknown.text}; the ack will be in the log (GET /api/commands/${cmd.id})`;
        return answer(tenant, tag, { id: cmd.id, ok: false, status: "timeout", code: "timeout_outcome_unknown", error, offset: cmd.offset });
      }
      answer(tenant, tag, { id: cmd.id, ok: ack.ok, status: ack.status, code: ack.code, ...(ack.error ? { error: ack.error } : {}), offset: cmd.offset });
    } catch (e) {
      d.logger.error({ err: e, topic }, "mqtt commands: submitting the command failed");
      answer(tenant, tag, { id: id ?? null, ok: false, status: "error", code: "internal_error", error: (e as Error).message });
    }
  };
  const listener = (topic: string, payload: Buffer, packet: unknown) => void onMessage(topic, payload, packet as never).catch(() => undefined);
  d.client.on("message", listener);
  return {
    async stop() {
      d.client.off("message", listener);
      d.client.off("connect", subscribe);
    },
  };
}
