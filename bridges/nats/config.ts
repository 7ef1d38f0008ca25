// Config of the NATS JetStream bridge: the `nats:` section of gateway.yml. schemas/config.ts keeps the
// section permissive; this schema validates it fully, so an error names gateway.yml and the path.
import { Type, type Static } from "@sinclair/typebox";
import { parseWithSchema } from "../../schemas/validate.ts";
import { ConfigError } from "../../schemas/errors.ts";

export const NatsStreamConfig = Type.Object(
  {
    provision: Type.Boolean({ default: false, description: "create the stream at start when missing (edgectl nats provision does it by hand)" }),
    replicas: Type.Integer({ minimum: 1, maximum: 5, default: 1 }),
    maxAgeSec: Type.Integer({ minimum: 0, default: 7 * 86_400, description: "oldest message kept (0: no limit)" }),
    maxBytes: Type.Integer({ minimum: -1, default: -1, description: "stream size bound in bytes (-1: none)" }),
    duplicateWindowSec: Type.Integer({ minimum: 1, default: 86_400, description: "how long message ids are remembered: longer than the longest replay" }),
  },
  { default: {}, additionalProperties: false },
);

export const NatsCommandsConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: "take commands from a durable JetStream consumer on this gateway's command subjects" }),
    stream: Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_-]+$", default: "EDGE_CMD", description: "JetStream stream holding commands and their answers (subjects {subjectPrefix}.>)" }),
    subjectPrefix: Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$", default: "edge-cmd", description: "first subject tokens of commands and answers; must not lie under the frames' subjectPrefix (a subject belongs to one stream)" }),
    consumer: Type.Optional(Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_-]+$", description: "durable consumer name (default cmd-{gatewayId}, encoded)" })),
    ackWaitMs: Type.Integer({ minimum: 100, default: 30_000, description: "JetStream redelivers a command not acknowledged within this time (after a gateway crash)" }),
    maxAckPending: Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: "commands delivered and not yet answered" }),
    timeoutMs: Type.Integer({ minimum: 1, default: 10_000, description: "wait for the command's ack before answering timeout_outcome_unknown" }),
    ttlMs: Type.Integer({ minimum: 1, default: 30_000, description: "life of a command whose message gives no ttlMs or expiresAt, from its ts" }),
    maxTtlMs: Type.Integer({ minimum: 1, default: 300_000, description: "longest life a command may ask for" }),
    maxAgeSec: Type.Integer({ minimum: 0, default: 86_400, description: "commands and answers kept in the stream (0: no limit)" }),
  },
  { default: {}, additionalProperties: false },
);
export type NatsCommandsConfig = Static<typeof NatsCommandsConfig>;

export const NatsConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: false }),
    servers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, default: ["nats://127.0.0.1:4222"], description: "seed servers of the cluster" }),
    user: Type.Optional(Type.String()),
    pass: Type.Optional(Type.String()),
    token: Type.Optional(Type.String()),
    stream: Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_-]+$", default: "EDGE", description: "JetStream stream the frames go to" }),
    subjectPrefix: Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$", default: "edge", description: "first subject tokens" }),
    payload: Type.Union([Type.Literal("json"), Type.Literal("msgpack")], { default: "json", description: "json: the MQTT uplink's batch format; msgpack: about 30% smaller (drain rates measured alike here, within the noise of a shared machine)" }),
    batch: Type.Object(
      {
        maxFrames: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000, description: "frames per message" }),
        maxBytes: Type.Integer({ minimum: 256, default: 512 * 1024, description: "approximate payload bound (below the server's max_payload, 1 MB by default)" }),
        maxDelayMs: Type.Integer({ minimum: 0, default: 5, description: "longest a frame waits for its batch to fill" }),
      },
      { default: {}, additionalProperties: false },
    ),
    maxInflight: Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: "messages published and not yet acknowledged" }),
    ackTimeoutMs: Type.Integer({ minimum: 50, default: 5000, description: "how long to wait for JetStream's ack before the publish is retried" }),
    retryMinMs: Type.Integer({ minimum: 10, default: 200 }),
    retryMaxMs: Type.Integer({ minimum: 10, default: 10_000 }),
    commitEveryMs: Type.Integer({ minimum: 1, default: 100, description: "how often the acknowledged offset is stored as the cursor" }),
    cursor: Type.String({ default: "nats", description: "name of this bridge's cursor in the log" }),
    streamConfig: NatsStreamConfig,
    commands: NatsCommandsConfig,
  },
  { additionalProperties: false },
);
export type NatsConfig = Static<typeof NatsConfig>;

/** Validates the `nats:` section; throws ConfigError("…/gateway.yml", "nats.<path>", …). */
export function parseNatsConfig(section: unknown, file = "gateway.yml"): NatsConfig {
  const cfg = parseWithSchema(NatsConfig, section ?? {}, file, "nats");
  if (cfg.retryMaxMs < cfg.retryMinMs) throw new ConfigError(file, "nats.retryMaxMs", `must be at least retryMinMs (${cfg.retryMinMs})`);
  const cc = cfg.commands;
  if (cc.maxTtlMs < cc.ttlMs) throw new ConfigError(file, "nats.commands.maxTtlMs", `must be at least ttlMs (${cc.ttlMs})`);
  if (cc.stream === cfg.stream) throw new ConfigError(file, "nats.commands.stream", `must differ from the frames' stream '${cfg.stream}'`);
  // JetStream refuses two streams with overlapping subjects, and the bridge's restart look-up reads every subject under its prefix
  const [a, b] = [`${cc.subjectPrefix}.`, `${cfg.subjectPrefix}.`];
  if (a.startsWith(b) || b.startsWith(a)) throw new ConfigError(file, "nats.commands.subjectPrefix", `'${cc.subjectPrefix}' overlaps the frames' subjectPrefix '${cfg.subjectPrefix}'; use another first token (default edge-cmd)`);
  return cfg;
}
