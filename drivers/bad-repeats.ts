// The Bad frames of one driver's tags that are news. A Bad reading carries no usable value: what tells
// anything is its quality (the reason) changing, so the same Bad again (a device that stays off through
// every backoff retry, an OPC UA server polled while unreachable) is dropped until the tag's heartbeat
// (`maxIntervalMs`, the mapping layer's heartbeat of an unchanged reading) has passed since it was
// logged, whatever `reportByException` says. Without this a PLC off for hours logged (and published
// uplink) each of its tags again at every retry of the driver. Pure, no I/O: the manager owns one per
// driver (drivers/manager.ts) and tells it every frame it logs, its own Bad markings included.
import { isBad, type DataFrame, type Variable } from "../schemas/index.ts";
import { DEFAULT_MAX_INTERVAL_MS } from "../schemas/mapping.ts";

/** The last Bad frame logged for a tag: its quality and when (ms). */
interface BadMark {
  quality: number;
  atMs: number;
}

export class BadRepeats {
  /** tags whose last logged frame was Bad; a Good or Uncertain frame removes its tag */
  private readonly marks = new Map<string, BadMark>();
  /** heartbeat per tag (ms; 0: a repeat is never logged again) */
  private heartbeatMs = new Map<string, number>();

  constructor(tags: readonly Variable[]) {
    this.update(tags);
  }

  /** A live edit of the tags' mapping (maxIntervalMs may change). */
  update(tags: readonly Variable[]): void {
    this.heartbeatMs = new Map(tags.map((t) => [t.tag, t.maxIntervalMs ?? DEFAULT_MAX_INTERVAL_MS]));
  }

  /** The quality of the tag's last logged frame when it was Bad, else undefined. */
  quality(tag: string): number | undefined {
    return this.marks.get(tag)?.quality;
  }

  /** Whether any tag's last logged frame is Bad (while none is, `drop` has nothing to do). */
  get isEmpty(): boolean {
    return this.marks.size === 0;
  }

  /**
   * `frames` without the Bad ones that repeat their tag's logged Bad quality within its heartbeat; the
   * input array itself when none is dropped (the usual case: one lookup per frame while a tag is Bad).
   */
  drop(frames: DataFrame[], nowMs: number): DataFrame[] {
    if (this.marks.size === 0) return frames;
    let out: DataFrame[] | null = null;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const repeat = this.isRepeat(f, nowMs);
      if (out === null) {
        if (!repeat) continue;
        out = frames.slice(0, i);
      }
      if (!repeat) out.push(f);
    }
    return out ?? frames;
  }

  private isRepeat(f: DataFrame, nowMs: number): boolean {
    const mark = this.marks.get(f.tag);
    if (mark === undefined || mark.quality !== f.quality) return false;
    const heartbeat = this.heartbeatMs.get(f.tag) ?? DEFAULT_MAX_INTERVAL_MS;
    return heartbeat === 0 || nowMs - mark.atMs < heartbeat;
  }

  /** Frames that were logged: a Bad one marks its tag (with its time), any other clears the mark. */
  note(frames: readonly DataFrame[], nowMs: number): void {
    for (const f of frames) {
      if (isBad(f.quality)) this.mark(f.tag, f.quality, nowMs);
      else this.marks.delete(f.tag);
    }
  }

  mark(tag: string, quality: number, nowMs: number): void {
    const mark = this.marks.get(tag);
    if (mark === undefined) this.marks.set(tag, { quality, atMs: nowMs });
    else {
      // in place: a tag flapping between Bad reasons allocates nothing
      mark.quality = quality;
      mark.atMs = nowMs;
    }
  }
}
