// Creates or checks the JetStream stream the bridge publishes to (edgectl nats provision, and the bridge
// at start with streamConfig.provision: true). Idempotent: an existing stream is updated to the limits
// asked for when they differ (subjects are added, never removed), else left alone.
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import type { NatsConfig } from "./config.ts";

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

export async function provisionStream(jsm: JetStreamManager, cfg: NatsConfig): Promise<ProvisionResult> {
  const want = streamSettings(cfg);
  const info = await jsm.streams.info(cfg.stream).catch((e: Error) => {
    if (/stream not found/i.test(e.message)) return null;
    throw e;
  });
  if (!info) {
    const created = await jsm.streams.add(want);
    return { stream: cfg.stream, action: "created", subjects: created.config.subjects ?? [] };
  }
  const have = info.config;
  const subjects = [...new Set([...(have.subjects ?? []), ...want.subjects!])];
  const same =
    subjects.length === (have.subjects ?? []).length &&
    have.num_replicas === want.num_replicas &&
    have.max_age === want.max_age &&
    have.max_bytes === want.max_bytes &&
    have.duplicate_window === want.duplicate_window;
  if (same) return { stream: cfg.stream, action: "unchanged", subjects };
  const updated = await jsm.streams.update(cfg.stream, { ...want, subjects });
  return { stream: cfg.stream, action: "updated", subjects: updated.config.subjects ?? [] };
}
