// The published state of every alarm (one AlarmState per id), as the log says it: rebuilt on start from
// the last transition event per id (the Parquet archive included), then changed only together with a
// transition event. Whatever GET /api/alarms answers is in this table, and every change of it is a frame
// in the log.
import { AlarmTransition, type AlarmPriority, type AlarmState, type EventFrame } from "../../schemas/index.ts";
import { join, resolve } from "node:path";
import type { EventLog } from "../../storage/index.ts";
import { KIND_CODE } from "../../storage/codec.ts";
import { archiveFiles } from "../../storage/views.ts";

const TRANSITIONS = new Set<string>(Object.values(AlarmTransition));

/** `source` of every transition event. */
export const ALARMS_SOURCE = "alarms";

export const PRIORITIES: readonly AlarmPriority[] = ["critical", "high", "medium", "low"];

export interface AlarmFilter {
  /** only these priorities */
  priority?: readonly AlarmPriority[];
  /** only alarms whose tag starts with it */
  tagPrefix?: string;
  /** "annunciated" (default): active or unacknowledged and not shelved; "active"; "unacked"; "shelved"; "all" (every known alarm) */
  state?: "annunciated" | "active" | "unacked" | "shelved" | "all";
}

const sqlString = (v: string) => `'${v.replaceAll("'", "''")}'`;

/**
 * One row per alarm id: the body of its last transition up to `to`, and the `since` of its last
 * activation. Hot rows after meta.archived, Parquet rows up to it (as the `*_all` views: while a
 * retention run has written its files but not yet deleted the hot rows, no row counts twice).
 */
function lastTransitionsSql(to: number, archiveDir: string | undefined): string {
  const types = [...TRANSITIONS].map(sqlString).join(", ");
  const archived = `(SELECT coalesce(max(value), 0) FROM meta WHERE key = 'archived')`;
  const where = `kind = ${KIND_CODE.event} AND source = ${sqlString(ALARMS_SOURCE)}`;
  const hot = `SELECT "offset", body FROM log WHERE ${where} AND "offset" > ${archived} AND "offset" <= ${Math.floor(to)}`;
  const dir = archiveDir ? resolve(archiveDir) : null;
  const cold =
    dir && archiveFiles(dir).length
      ? `SELECT "offset", body FROM read_parquet(${sqlString(join(dir, "day=*", "*.parquet"))}, hive_partitioning = false) WHERE ${where} AND "offset" <= ${archived}`
      : null;
  return `WITH t AS (
      SELECT "offset", body, json_extract_string(body, '$.type') AS type, json_extract_string(body, '$.data.id') AS id
      FROM (${cold ? `${cold} UNION ALL ` : ""}${hot}) WHERE json_extract_string(body, '$.type') IN (${types}))
    SELECT arg_max(body, "offset"), arg_max(TRY_CAST(json_extract(body, '$.data.since') AS BIGINT), CASE WHEN type = 'alarm.active' THEN "offset" END)
    FROM t WHERE id IS NOT NULL GROUP BY id`;
}

export const isShelved = (s: AlarmState, nowUs: number) => s.shelvedUntil !== undefined && nowUs < s.shelvedUntil;

export class AlarmTable {
  private readonly states = new Map<string, AlarmState>();

  get(id: string): AlarmState | undefined {
    return this.states.get(id);
  }

  all(): IterableIterator<AlarmState> {
    return this.states.values();
  }

  /**
   * The last transition per id of the log (offsets 1..to), archived ones included: retention moves old
   * frames to Parquet under `archiveDir`, and an alarm whose last transition left the hot table must
   * keep its state. Transitions logged before `activeSince` existed get it from their last activation.
   */
  async rebuild(log: EventLog, to: number, archiveDir?: string): Promise<void> {
    this.states.clear();
    const conn = await log.connect();
    try {
      const rows = (await conn.runAndReadAll(lastTransitionsSql(to, archiveDir))).getRows() as [string, bigint | number | null][];
      for (const [body, activeSince] of rows) {
        const s = (JSON.parse(body) as { data?: AlarmState }).data;
        if (!s || typeof s.id !== "string") continue;
        if (s.activeSince === undefined && activeSince !== null) s.activeSince = Number(activeSince);
        this.states.set(s.id, s);
      }
    } finally {
      conn.closeSync();
    }
  }

  /** Puts back a state (an operator's transition the log could not record). */
  put(s: AlarmState): void {
    this.states.set(s.id, s);
  }

  remove(id: string): void {
    this.states.delete(id);
  }

  /** Sets the new state of an alarm and returns its transition event (the caller appends it). */
  transition(type: AlarmTransition, next: AlarmState, tsUs: number): EventFrame {
    this.states.set(next.id, next);
    return { kind: "event", type, source: ALARMS_SOURCE, ...(next.tag === undefined ? {} : { tag: next.tag }), ts: tsUs, data: { ...next } };
  }

  /** The alarms a filter selects, highest priority first, then newest first. */
  list(f: AlarmFilter, nowUs: number): AlarmState[] {
    const want = f.state ?? "annunciated";
    const out: AlarmState[] = [];
    for (const s of this.states.values()) {
      if (f.priority && !f.priority.includes(s.priority)) continue;
      if (f.tagPrefix !== undefined && !(s.tag ?? "").startsWith(f.tagPrefix)) continue;
      const shelved = isShelved(s, nowUs);
      const keep =
        want === "all" ||
        (want === "shelved" && shelved) ||
        (want === "active" && s.active) ||
        (want === "unacked" && !s.acked) ||
        (want === "annunciated" && !shelved && (s.active || !s.acked));
      if (keep) out.push({ ...s });
    }
    return out.sort((a, b) => PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority) || b.since - a.since);
  }

  /** Annunciated counts (active, not shelved) and unacknowledged counts, by priority. */
  counts(nowUs: number): { active: Record<AlarmPriority, number>; unacked: Record<AlarmPriority, number>; shelved: number } {
    const zero = () => ({ critical: 0, high: 0, medium: 0, low: 0 });
    const active = zero();
    const unacked = zero();
    let shelved = 0;
    for (const s of this.states.values()) {
      if (isShelved(s, nowUs)) {
        shelved++;
        continue;
      }
      if (s.active) active[s.priority]++;
      if (!s.acked) unacked[s.priority]++;
    }
    return { active, unacked, shelved };
  }
}
