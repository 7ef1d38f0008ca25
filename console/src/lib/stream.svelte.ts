// The live store over the WebSocket /api/stream: the latest value of every tag the user may read, with a
// short numeric history per tag for sparklines. Pages read `live.values` after reading `live.version`
// (bumped at most once per animation frame, so 1,000 tags changing at 1 Hz cost one render a frame, not
// one per frame received). The socket and its JSON live in a worker (stream.worker.ts) so that parsing
// does not take the page's frames. A dropped connection resumes from the last offset seen (no gap); a
// token that ended (close 4401) asks for a login first.
import { requireLogin, session } from "./session.svelte.ts";
import type { DataRow, FromWorker, ToWorker } from "./stream.worker.ts";

export interface LiveValue {
  tag: string;
  value: unknown;
  /** OPC UA StatusCode */
  quality: number;
  /** source timestamp, epoch ms */
  ts: number;
  offset: number;
  /** the last numeric values received (oldest first), for sparklines */
  recent: number[];
}

/** One frame of the stream (the log's frames, as /api/stream sends them). */
export interface StreamFrame {
  kind: string;
  offset: number;
  tag?: string;
  value?: unknown;
  quality?: number;
  ts?: number;
  [k: string]: unknown;
}

const RECENT = 60;
const CLOSE_UNAUTHORIZED = 4401;

export class LiveStream {
  readonly values = new Map<string, LiveValue>();
  version = $state(0);
  state: "connecting" | "live" | "reconnecting" | "stopped" = $state("connecting");
  /** frames received per second, over the last second */
  rate = $state(0);
  private worker: Worker | null = null;
  private last = 0;
  private stopped = false;
  private retryMs = 500;
  private pending = false;
  private received = 0;
  private rateTimer: ReturnType<typeof setInterval> | null = null;
  private listeners = new Set<(f: StreamFrame) => void>();

  /** `tags`: comma-separated patterns (the API's syntax); absent: every readable tag. */
  constructor(private readonly tags?: string) {}

  start(): this {
    this.rateTimer = setInterval(() => ((this.rate = this.received), (this.received = 0)), 1000);
    this.worker = new Worker(new URL("./stream.worker.ts", import.meta.url), { type: "module" });
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.message(e.data);
    void this.connect();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.state = "stopped";
    if (this.rateTimer) clearInterval(this.rateTimer);
    this.send({ type: "close" });
    this.worker?.terminate();
    this.worker = null;
  }

  private send(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  /** Every frame other than data (cmd, ack, event) as it arrives; returns the unsubscribe function. */
  onFrame(fn: (f: StreamFrame) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Seeds values from a snapshot (GET /api/tags); a value the stream already has, newer, stays. */
  seed(rows: Array<{ tag: string; value: unknown; quality: number; ts: number; offset: number }>): void {
    for (const r of rows) {
      const have = this.values.get(r.tag);
      if (have && have.offset >= r.offset) continue;
      this.values.set(r.tag, { ...r, recent: typeof r.value === "number" ? [r.value] : (have?.recent ?? []) });
    }
    this.bump();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    await requireLogin();
    if (this.stopped) return;
    const q = new URLSearchParams({ token: session.token ?? "" });
    if (this.last) q.set("from", String(this.last + 1));
    if (this.tags) q.set("tags", this.tags);
    this.send({ type: "connect", url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/stream?${q}` });
  }

  private message(m: FromWorker): void {
    if (this.stopped) return;
    if (m.type === "hello") {
      this.state = "live";
      this.retryMs = 500;
      return;
    }
    if (m.type === "closed") {
      this.state = "reconnecting";
      if (m.code === CLOSE_UNAUTHORIZED) {
        session.token = null;
        void requireLogin("Your session has ended: log in again to keep the live values").then(() => this.connect());
        return;
      }
      setTimeout(() => void this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
      return;
    }
    this.received += m.count;
    for (const row of m.rows) this.apply(row);
    for (const f of m.others) for (const fn of this.listeners) fn(f as StreamFrame);
    if (m.last) this.last = m.last;
    this.bump();
  }

  private apply([tag, value, quality, ts, offset]: DataRow): void {
    let v = this.values.get(tag);
    if (!v) {
      v = { tag, value: null, quality: 0, ts: 0, offset: 0, recent: [] };
      this.values.set(tag, v);
    }
    v.value = value;
    v.quality = quality;
    v.ts = ts;
    v.offset = offset;
    if (typeof value === "number") {
      v.recent.push(value);
      if (v.recent.length > RECENT) v.recent.shift();
    }
  }

  private bump(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.version++;
    });
  }
}
