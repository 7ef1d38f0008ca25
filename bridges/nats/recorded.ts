// After a restart: the messages this gateway already put in the stream past the stored cursor, as offset
// ranges. The publisher cuts those offsets again exactly as the previous process did (same ranges, same
// Nats-Msg-Id: JetStream answers duplicate), and cuts only the offsets no stored message covers anew.
// Reading the stream back instead of trusting only its last message matters when a process died while
// an earlier message was failing (a leader election) and a later one was already stored: the gap is
// filled, nothing is skipped.
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { NatsConfig } from "./config.ts";
import { gatewaySubjects } from "./subjects.ts";

export interface OffsetRange {
  first: number;
  last: number;
}

/**
 * How far before the commit time of the first unacknowledged frame the stream is read: the gateway's
 * clock may be behind the NATS server's by up to this much. A larger skew can only cause duplicates (a
 * stored message not found is cut anew), never a gap.
 */
export const CLOCK_SKEW_MS = 60_000;

/**
 * This gateway's messages whose ranges end after `cursor`, in offset order (headers only). `since` is the
 * commit time (ms) of frame cursor+1, null when the log no longer has it (then only the last message is
 * known, and the offsets up to it are taken as stored).
 */
export async function recordedAfter(nc: NatsConnection, cfg: NatsConfig, gatewayId: string, cursor: number, since: number | null): Promise<OffsetRange[]> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const subject = gatewaySubjects(cfg.subjectPrefix, gatewayId);
  const last = await jsm.streams.getMessage(cfg.stream, { last_by_subj: subject });
  const lastOffset = Number(last?.header?.get("Edge-Last") ?? 0);
  if (!last || lastOffset <= cursor) return [];
  if (since === null) return [{ first: cursor + 1, last: lastOffset }];
  const consumer = await jetstream(nc).consumers.get(cfg.stream, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(since - CLOCK_SKEW_MS).toISOString(),
    headers_only: true,
  });
  const ranges: OffsetRange[] = [];
  const msgs = await consumer.consume();
  try {
    for await (const m of msgs) {
      const first = Number(m.headers?.get("Edge-First"));
      const lastOff = Number(m.headers?.get("Edge-Last"));
      const prev = ranges[ranges.length - 1];
      if (lastOff > cursor && first > cursor && (!prev || first > prev.last)) ranges.push({ first, last: lastOff });
      if (m.seq >= last.seq) break;
    }
  } finally {
    await msgs.close().catch(() => undefined);
  }
  return ranges;
}
