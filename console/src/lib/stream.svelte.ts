// The live store over the WebSocket /api/stream: the latest value of every tag the user may read, with a
// short numeric history per tag for sparklines. Pages read `live.values` after reading `live.version`
// (bumped at most once per animation frame, so 1,000 tags changing at 1 Hz cost one render a frame, not
// one per frame received). A dropped connection resumes from the last offset seen (no gap); a token that
// ended (close 4401) asks for a login first.
import { requireLogin, session } from "./session.svelte.ts";

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
  private ws: WebSocket | null = null;
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
    void this.connect();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.state = "stopped";
    if (this.rateTimer) clearInterval(this.rateTimer);
    this.ws?.close(1000);
  }

  /** Every frame (data, cmd, ack, event) as it arrives; returns the unsubscribe function. */
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
    const q = new URLSearchParams({ token: session.token ?? "" });
    if (this.last) q.set("from", String(this.last + 1));
    if (this.tags) q.set("tags", this.tags);
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/stream?${q}`);
    this.ws = ws;
    ws.onmessage = (m) => this.message(String(m.data));
    ws.onclose = (e) => {
      if (this.stopped || this.ws !== ws) return;
      this.state = "reconnecting";
      if (e.code === CLOSE_UNAUTHORIZED) {
        session.token = null;
        void requireLogin("Your session has ended: log in again to keep the live values").then(() => this.connect());
        return;
      }
      setTimeout(() => void this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    };
  }

  private message(text: string): void {
    const msg = JSON.parse(text) as { hello?: unknown; frames?: StreamFrame[]; last?: number; error?: string };
    if (msg.hello) {
      this.state = "live";
      this.retryMs = 500;
      return;
    }
    if (!msg.frames) return;
    for (const f of msg.frames) {
      this.received++;
      if (f.kind === "data" && f.tag) this.apply(f);
      for (const fn of this.listeners) fn(f);
    }
    if (msg.last) this.last = msg.last;
    this.bump();
  }

  private apply(f: StreamFrame): void {
    let v = this.values.get(f.tag!);
    if (!v) {
      v = { tag: f.tag!, value: null, quality: 0, ts: 0, offset: 0, recent: [] };
      this.values.set(f.tag!, v);
    }
    v.value = f.value;
    v.quality = f.quality ?? 0;
    v.ts = (f.ts ?? 0) / 1000;
    v.offset = f.offset;
    if (typeof f.value === "number") {
      v.recent.push(f.value);
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
