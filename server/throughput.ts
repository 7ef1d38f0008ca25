// What the console's overview shows as "now": frames committed per second and commit latency over the
// last seconds (from the log's 'commit' events: one per batch, never per frame, so the writer pays one
// array push per commit), and how fast a consumer drains its backlog (from its position between two
// looks). One per gateway, made on first use.
import type { CommitEvent, EventLog } from "../storage/index.ts";

const WINDOW_MS = 10_000;

export interface Throughput {
  framesPerSecond: number;
  commitsPerSecond: number;
  /** over the window's commits; null without commits */
  commitLatencyMs: { p50: number; p99: number; max: number } | null;
}

export class ThroughputWindow {
  // parallel arrays: time, frames, latency of each commit in the window
  private readonly at: number[] = [];
  private readonly frames: number[] = [];
  private readonly latency: number[] = [];
  private readonly drain = new Map<string, { at: number; position: number; rate: number }>();
  private readonly onCommit = (c: CommitEvent) => {
    this.at.push(performance.now());
    this.frames.push(c.frames);
    this.latency.push(c.latencyMs);
    this.trim(performance.now());
  };

  constructor(private readonly log: EventLog) {
    log.on("commit", this.onCommit);
  }

  close(): void {
    this.log.off("commit", this.onCommit);
  }

  private trim(now: number): void {
    let drop = 0;
    while (drop < this.at.length && this.at[drop]! < now - WINDOW_MS) drop++;
    if (drop === 0) return;
    this.at.splice(0, drop);
    this.frames.splice(0, drop);
    this.latency.splice(0, drop);
  }

  now(): Throughput {
    const now = performance.now();
    this.trim(now);
    // over the window, or since the first commit when the gateway is younger than the window
    const spanS = Math.max(1, Math.min(WINDOW_MS, now - (this.at[0] ?? now)) / 1000);
    const total = this.frames.reduce((a, b) => a + b, 0);
    const sorted = [...this.latency].sort((a, b) => a - b);
    const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return {
      framesPerSecond: total / spanS,
      commitsPerSecond: this.at.length / spanS,
      commitLatencyMs: sorted.length ? { p50: pick(0.5), p99: pick(0.99), max: sorted[sorted.length - 1]! } : null,
    };
  }

  /**
   * Frames per second a consumer handled since the last look (smoothed); with its lag, the time to drain
   * its backlog. 0 until two looks a second apart.
   */
  drainRate(name: string, position: number): number {
    const now = performance.now();
    const last = this.drain.get(name);
    if (!last) {
      this.drain.set(name, { at: now, position, rate: 0 });
      return 0;
    }
    if (now - last.at < 1000) return last.rate;
    const rate = Math.max(0, (position - last.position) / ((now - last.at) / 1000));
    const smoothed = last.rate ? 0.5 * last.rate + 0.5 * rate : rate;
    this.drain.set(name, { at: now, position, rate: smoothed });
    return smoothed;
  }
}

const windows = new WeakMap<EventLog, ThroughputWindow>();

/** The gateway's window (one per log), listening from its first use. */
export function throughputOf(log: EventLog): ThroughputWindow {
  let w = windows.get(log);
  if (!w) windows.set(log, (w = new ThroughputWindow(log)));
  return w;
}
