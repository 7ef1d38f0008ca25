// The published state of every alarm (one AlarmState per id), as the log says it: rebuilt on start from
// the last transition event per id, then changed only together with a transition event. Whatever
// GET /api/alarms answers is in this table, and every change of it is a frame in the log.
import { AlarmTransition, type AlarmPriority, type AlarmState, type EventFrame } from "../../schemas/index.ts";
import type { EventLog } from "../../storage/index.ts";

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

export const isShelved = (s: AlarmState, nowUs: number) => s.shelvedUntil !== undefined && nowUs < s.shelvedUntil;

export class AlarmTable {
  private readonly states = new Map<string, AlarmState>();

  get(id: string): AlarmState | undefined {
    return this.states.get(id);
  }

  all(): IterableIterator<AlarmState> {
    return this.states.values();
  }

  /** Reads every transition event of the log (offsets 1..to) and keeps the last one per id. */
  async rebuild(log: EventLog, to: number): Promise<void> {
    this.states.clear();
    for await (const page of log.pages({ from: 1, to, kinds: ["event"] })) {
      for (const f of page) {
        if (f.kind !== "event" || !TRANSITIONS.has(f.type) || f.source !== ALARMS_SOURCE) continue;
        const s = f.data as AlarmState | undefined;
        if (s && typeof s.id === "string") this.states.set(s.id, s);
      }
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
