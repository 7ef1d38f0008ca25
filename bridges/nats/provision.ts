// Creates or checks the JetStream stream the bridge publishes to (edgectl nats provision, and the bridge
// at start with streamConfig.provision: true). Idempotent: an existing stream is updated to the limits
// asked for when they differ (subjects are added, never removed), else left alone. With nats.commands
// enabled, also the command stream and this gateway's durable command consumer (provisionCommands).
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type ConsumerConfig, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import type { NatsConfig } from "./config.ts";
import { commandConsumerName, commandFilter } from "./subjects.ts";

const NS_PER_S = 1_000_000_000;

export interface ProvisionResult {
  stream: string;
  action: "created" | "updated" | "unchanged";
  subjects: string[];
}

/** The stream the config asks for: file storage, limits retention, discard old, a long duplicate window. */
export function streamSettings(cfg: NatsConfig): Partial<StreamConfig> & { name: string } {
  const s = cfg.streamConfig;
  return {
    name: cfg.stream,
    subjects: [`${cfg.subjectPrefix}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: s.replicas,
    max_age: s.maxAgeSec * NS_PER_S,
    max_bytes: s.maxBytes,
    // a replay after an outage re-publishes at most the unacknowledged tail, but ids must be remembered
    // for as long as an outage may last, or a retry after it could be stored twice
    duplicate_window: s.duplicateWindowSec * NS_PER_S,
  };
}

/** The stream's info, or null when it does not exist. */
async function streamInfo(jsm: JetStreamManager, name: string) {
  return await jsm.streams.info(name).catch((e: Error) => {
    if (/stream not found/i.test(e.message)) return null;
    throw e;
  });
}

/** Creates the stream, or updates it when a limit differs (subjects only ever added), or leaves it. */
async function ensureStream(jsm: JetStreamManager, want: Partial<StreamConfig> & { name: string }): Promise<ProvisionResult> {
  const info = await streamInfo(jsm, want.name);
  if (!info) {
    const created = await jsm.streams.add(want);
    return { stream: want.name, action: "created", subjects: created.config.subjects ?? [] };
  }
  const have = info.config;
  const subjects = [...new Set([...(have.subjects ?? []), ...want.subjects!])];
  const same =
    subjects.length === (have.subjects ?? []).length &&
    have.num_replicas === want.num_replicas &&
    have.max_age === want.max_age &&
    have.max_bytes === want.max_bytes &&
    have.duplicate_window === want.duplicate_window;
  if (same) return { stream: want.name, action: "unchanged", subjects };
  const updated = await jsm.streams.update(want.name, { ...want, subjects });
  return { stream: want.name, action: "updated", subjects: updated.config.subjects ?? [] };
}

export async function provisionStream(jsm: JetStreamManager, cfg: NatsConfig): Promise<ProvisionResult> {
  return await ensureStream(jsm, streamSettings(cfg));
}

/** The command stream: commands and answers under commands.subjectPrefix, kept commands.maxAgeSec. */
export function commandStreamSettings(cfg: NatsConfig): Partial<StreamConfig> & { name: string } {
  const cc = cfg.commands;
  const maxAge = cc.maxAgeSec * NS_PER_S;
  const dup = cfg.streamConfig.duplicateWindowSec * NS_PER_S;
  return {
    name: cc.stream,
    subjects: [`${cc.subjectPrefix}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: cfg.streamConfig.replicas,
    max_age: maxAge,
    max_bytes: -1,
    // JetStream refuses a duplicate window longer than max age
    duplicate_window: maxAge > 0 ? Math.min(dup, maxAge) : dup,
  };
}

/**
 * The gateway's durable consumer: explicit acks (a command is acked once answered, so a crash before that
 * redelivers it after ackWaitMs), only commands published after its creation (older ones were for nobody).
 */
export function commandConsumerSettings(cfg: NatsConfig, gatewayId: string): Partial<ConsumerConfig> & { durable_name: string } {
  const cc = cfg.commands;
  return {
    durable_name: cc.consumer ?? commandConsumerName(gatewayId),
    filter_subject: commandFilter(cc.subjectPrefix, gatewayId),
    ack_policy: AckPolicy.Explicit,
    ack_wait: cc.ackWaitMs * 1_000_000,
    max_ack_pending: cc.maxAckPending,
    deliver_policy: DeliverPolicy.New,
  };
}

export interface CommandsProvisionResult {
  stream: ProvisionResult;
  consumer: { name: string; action: "created" | "updated" | "unchanged"; filter: string };
}

/** Creates or checks the command stream and this gateway's consumer (filter, ack wait, pending bound). */
export async function provisionCommands(jsm: JetStreamManager, cfg: NatsConfig, gatewayId: string): Promise<CommandsProvisionResult> {
  const stream = await ensureStream(jsm, commandStreamSettings(cfg));
  const want = commandConsumerSettings(cfg, gatewayId);
  const name = want.durable_name;
  const filter = want.filter_subject!;
  const have = await jsm.consumers.info(cfg.commands.stream, name).catch((e: Error) => {
    if (/consumer not found/i.test(e.message)) return null;
    throw e;
  });
  if (!have) {
    await jsm.consumers.add(cfg.commands.stream, want);
    return { stream, consumer: { name, action: "created", filter } };
  }
  const c = have.config;
  if (c.filter_subject === filter && c.ack_wait === want.ack_wait && c.max_ack_pending === want.max_ack_pending) return { stream, consumer: { name, action: "unchanged", filter } };
  // the deliver policy of an existing consumer cannot change (nor need to): only what may is updated
  await jsm.consumers.update(cfg.commands.stream, name, { filter_subject: filter, ack_wait: want.ack_wait, max_ack_pending: want.max_ack_pending });
  return { stream, consumer: { name, action: "updated", filter } };
}
