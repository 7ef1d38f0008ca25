// The WebSocket of LiveStream (stream.svelte.ts), off the page's main thread: 1,000 tags at 1 Hz are
// ~155 KB of JSON a second, and parsing it on the main thread took 3-15 ms at once, enough to drop a frame
// of the page each second. Here it is parsed, and the page gets only what it uses: data frames as compact
// rows, other frames (cmd, ack, event) whole, and the connection's open / close.
export type ToWorker = { type: "connect"; url: string } | { type: "close" };

/** A data frame as the page needs it: tag, value, quality, source timestamp (ms), offset. */
export type DataRow = [string, unknown, number, number, number];

export type FromWorker =
  | { type: "hello" }
  | { type: "frames"; rows: DataRow[]; others: Array<Record<string, unknown>>; last: number; count: number }
  | { type: "closed"; code: number };

let ws: WebSocket | null = null;

const post = (m: FromWorker) => (self as unknown as Worker).postMessage(m);

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.type === "close") {
    ws?.close(1000);
    ws = null;
    return;
  }
  ws?.close(1000);
  const socket = new WebSocket(m.url);
  ws = socket;
  socket.onmessage = (ev) => {
    const msg = JSON.parse(String(ev.data)) as { hello?: unknown; frames?: Array<Record<string, unknown>>; last?: number };
    if (msg.hello) return post({ type: "hello" });
    if (!msg.frames) return;
    const rows: DataRow[] = [];
    const others: Array<Record<string, unknown>> = [];
    for (const f of msg.frames) {
      if (f.kind === "data" && typeof f.tag === "string") rows.push([f.tag, f.value, (f.quality as number) ?? 0, ((f.ts as number) ?? 0) / 1000, f.offset as number]);
      else others.push(f);
    }
    post({ type: "frames", rows, others, last: msg.last ?? 0, count: msg.frames.length });
  };
  socket.onclose = (ev) => {
    if (ws === socket) post({ type: "closed", code: ev.code });
  };
};
