// Config of the MQTT uplink: the `mqtt:` section of gateway.yml. schemas/config.ts keeps the section
// permissive; this schema validates it fully, so an error names gateway.yml and the path (mqtt.qos ...).
import { Type, type Static } from "@sinclair/typebox";
import { parseWithSchema } from "../../schemas/validate.ts";
import { ConfigError } from "../../schemas/errors.ts";

const Qos = Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)]);

export const MqttCommandsConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: "subscribe to {tenant}/cmd/{tag} and execute writes" }),
    topic: Type.String({ default: "{tenant}/cmd/#", pattern: "^[^+#]*\\{tenant\\}[^+#]*/#$", description: "subscription per tenant: a template with {tenant} (and {device}) ending in '/#'; the tag is what '#' matches" }),
    ackTopic: Type.String({ default: "{tenant}/ack/{tag}", description: "where the result of each command is published" }),
    tenants: Type.Array(Type.String({ minLength: 1 }), { default: ["default"], description: "tenants whose cmd topics are subscribed" }),
    staticTokens: Type.Boolean({
      default: false,
      description: "also accept the per-tenant shared secrets of `tokens` (never expire, write every tag of the tenant); off: JWTs only, verified as on REST",
    }),
    tokens: Type.Record(Type.String(), Type.String({ minLength: 16 }), {
      default: {},
      description: "tenant -> shared secret (at least 16 characters), used only with staticTokens: true",
    }),
    timeoutMs: Type.Integer({ minimum: 100, default: 10_000, description: "how long to wait for the driver's ack" }),
    ttlMs: Type.Integer({ minimum: 100, default: 30_000, description: "life of a command without ttlMs, counted from its publication time (ts)" }),
    maxTtlMs: Type.Integer({ minimum: 100, default: 300_000, description: "longest life of a command from its publication, whatever ttlMs / expiresAt / message expiry ask" }),
  },
  { default: {}, additionalProperties: false },
);

export const MqttNorthConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: false }),
    url: Type.String({ pattern: "^mqtts?://", default: "mqtt://127.0.0.1:1883", description: "mqtt://host:port or mqtts://host:port" }),
    protocolVersion: Type.Union([Type.Literal(5), Type.Literal(4)], { default: 5, description: "5: MQTT 5, 4: MQTT 3.1.1" }),
    clientId: Type.Optional(Type.String({ minLength: 1, description: "default: edge-<gatewayId>" })),
    username: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    ca: Type.Optional(Type.String({ description: "PEM file of the CA that signed the broker's certificate (relative to the config dir)" })),
    cert: Type.Optional(Type.String({ description: "client certificate PEM file" })),
    key: Type.Optional(Type.String({ description: "client key PEM file" })),
    rejectUnauthorized: Type.Boolean({ default: true }),
    qos: Type.Union(Qos.anyOf, { default: 1, description: "0, 1 or 2" }),
    retain: Type.Boolean({ default: false }),
    topic: Type.String({ minLength: 1, default: "{tenant}/{device}/{tag}", description: "topic of single-frame messages" }),
    batchTopic: Type.String({ minLength: 1, default: "{tenant}/{device}/batch", description: "topic of batches (maxFrames > 1)" }),
    alarmTopic: Type.String({ default: "{tenant}/{device}/alarms", description: "topic of alarm transitions (alarm.active|cleared|acked|shelved|unshelved), one JSON message each: offset, type, ts, tag and the AlarmState; empty: not published" }),
    payload: Type.Union([Type.Literal("json"), Type.Literal("msgpack")], { default: "json" }),
    batch: Type.Object(
      {
        maxFrames: Type.Integer({ minimum: 1, maximum: 100_000, default: 500, description: "1: one message per frame on `topic`" }),
        maxBytes: Type.Integer({ minimum: 256, default: 256 * 1024, description: "approximate payload size bound" }),
        // 5 ms: measured at 20k frames/s, the linger adds about 3 ms (p50) to end-to-end latency; 20 ms added 12
        maxDelayMs: Type.Integer({ minimum: 0, default: 5, description: "longest a frame waits for its batch to fill (0: send what each commit brings)" }),
      },
      { default: {}, additionalProperties: false },
    ),
    maxInflight: Type.Integer({ minimum: 1, maximum: 65535, default: 64, description: "messages published but not yet acknowledged" }),
    messageExpirySec: Type.Optional(Type.Integer({ minimum: 1, description: "MQTT 5 message expiry interval" })),
    sessionExpirySec: Type.Integer({ minimum: 0, default: 86_400, description: "MQTT 5: how long the broker keeps our session" }),
    keepaliveSec: Type.Integer({ minimum: 0, default: 30 }),
    reconnectMinMs: Type.Integer({ minimum: 10, default: 500 }),
    reconnectMaxMs: Type.Integer({ minimum: 10, default: 30_000 }),
    statusTopic: Type.String({ default: "{device}/status", description: "retained birth ('online') and last will ('offline')" }),
    commitEveryMs: Type.Integer({ minimum: 1, default: 100, description: "how often the acknowledged offset is stored as the cursor" }),
    cursor: Type.String({ default: "mqtt-north", description: "name of this bridge's cursor in the log" }),
    commands: MqttCommandsConfig,
  },
  { additionalProperties: false },
);
export type MqttNorthConfig = Static<typeof MqttNorthConfig>;

/** Validates the `mqtt:` section; throws ConfigError("…/gateway.yml", "mqtt.<path>", …). */
export function parseMqttNorthConfig(section: unknown, file = "gateway.yml"): MqttNorthConfig {
  const cfg = parseWithSchema(MqttNorthConfig, section ?? {}, file, "mqtt");
  if (cfg.reconnectMaxMs < cfg.reconnectMinMs) throw new ConfigError(file, "mqtt.reconnectMaxMs", `must be at least reconnectMinMs (${cfg.reconnectMinMs})`);
  if ((cfg.cert === undefined) !== (cfg.key === undefined)) throw new ConfigError(file, cfg.cert ? "mqtt.key" : "mqtt.cert", "cert and key go together");
  checkCommandsConfig(cfg.commands, file);
  return cfg;
}

/** Static tokens are an explicit choice: tokens without staticTokens (an old config) would be silently unused. */
function checkCommandsConfig(cc: MqttNorthConfig["commands"], file: string): void {
  const withTokens = Object.keys(cc.tokens);
  if (!cc.staticTokens && withTokens.length > 0) {
    throw new ConfigError(file, "mqtt.commands.tokens", "static tokens are accepted only with mqtt.commands.staticTokens: true (they never expire; JWTs from auth: are the default)");
  }
  if (cc.staticTokens && withTokens.length === 0) throw new ConfigError(file, "mqtt.commands.tokens", "staticTokens: true needs a token for at least one tenant");
  if (cc.ttlMs > cc.maxTtlMs) throw new ConfigError(file, "mqtt.commands.ttlMs", `must be at most maxTtlMs (${cc.maxTtlMs})`);
}
