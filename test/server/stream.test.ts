// The WebSocket stream (/api/stream) reads through a supervised LogConsumer: a log read error is retried
// and the client keeps receiving every frame once, in order; its consumer ends when the client leaves;
// a client that stops reading holds its consumer (bounded memory) instead of being buffered without end.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import type { Frame } from "../../schemas/index.ts";
import { failLogReads } from "../helpers/faults.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": "tags:\n  - { tag: a, driver: sim, type: float64 }\n",
  });
});
afterAll(async () => g?.stop());

const frames = (n: number, from: number): Frame[] => Array.from({ length: n }, (_, i) => ({ kind: "data", tag: "a", value: from + i, ts: 1_700_000_000_000_000 + from + i, quality: 0, source: "sim" }));
const streamConsumers = () => g.gw.ctx.log.consumers().filter((c) => c.name.startsWith("stream-"));

async function openStream(from: number) {
  const tok = await token(null, { claims: { scope: "read" } });
  const ws = new WebSocket(`${g.url.replace("http", "ws")}/api/stream?from=${from}&token=${tok}`);
  const s = { ws, offsets: [] as number[], closedWith: null as number | null, hello: false };
  ws.onmessage = (m) => {
    const msg = JSON.parse(String(m.data));
    if (msg.hello) s.hello = true;
    for (const f of msg.frames ?? []) s.offsets.push(f.offset);
  };
  ws.onclose = (e) => (s.closedWith = e.code);
  await waitFor(() => s.hello, "the stream's hello");
  return s;
}

describe("/api/stream under log read errors", () => {
  it("keeps streaming without gap or duplicate after its log read fails, and stops its consumer on close", async () => {
    const first = g.gw.ctx.log.head + 1;
    const s = await openStream(first);
    await g.gw.ctx.log.append(frames(100, 0));
    await waitFor(() => s.offsets.length === 100, "the first 100 frames");
    // the stream's reads: every kind, a page at a time (not the 1-frame lag lookups of status())
    const fault = failLogReads(g.gw.ctx.log, 1, (o) => o.kinds === undefined && (o as { pageSize?: number }).pageSize !== 1);
    try {
      await g.gw.ctx.log.append(frames(100, 100));
      await waitFor(() => fault.thrown === 1, "the injected read failure");
      await g.gw.ctx.log.append(frames(100, 200));
      await waitFor(() => s.offsets.length >= 300, "300 frames after the failure");
    } finally {
      fault.restore();
    }
    expect(s.closedWith).toBeNull();
    expect(s.offsets).toEqual(Array.from({ length: 300 }, (_, i) => first + i));
    const [c] = streamConsumers();
    expect(c).toMatchObject({ state: "running", errors: 1, durable: false });
    expect(c!.lastError).toContain("injected read failure");
    s.ws.close();
    await waitFor(() => streamConsumers().length === 0, "the stream's consumer to stop");
  });

  it("runs one consumer per connection, each from its own offset", async () => {
    const head = g.gw.ctx.log.head;
    const a = await openStream(head + 1);
    const b = await openStream(Math.max(1, head - 9));
    expect(streamConsumers().length).toBe(2);
    await g.gw.ctx.log.append(frames(5, 1000));
    await waitFor(() => a.offsets.length === 5 && b.offsets.length === 15, "both streams");
    expect(a.offsets).toEqual([1, 2, 3, 4, 5].map((i) => head + i));
    expect(b.offsets[0]).toBe(Math.max(1, head - 9));
    a.ws.close();
    b.ws.close();
    await waitFor(() => streamConsumers().length === 0, "both consumers to stop");
  });
});

/** A WebSocket client on a bare socket, so that it can stop reading (pause) like a slow client. */
async function rawStream(from: number) {
  const tok = await token(null, { claims: { scope: "read" } });
  const sock: Socket = connect(Number(new URL(g.url).port), "127.0.0.1");
  const key = randomBytes(16).toString("base64");
  sock.write(`GET /api/stream?from=${from}&token=${tok} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const s = { sock, offsets: [] as number[], bytes: 0 };
  let buf = Buffer.alloc(0);
  let upgraded = false;
  sock.on("data", (chunk: Buffer) => {
    s.bytes += chunk.length;
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      upgraded = true;
      buf = buf.subarray(end + 4);
    }
    // server frames are unmasked: opcode byte, length (7 bits, or 16/64-bit extended), payload
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) [len, at] = buf.length < 4 ? [-1, 0] : [buf.readUInt16BE(2), 4];
      else if (len === 127) [len, at] = buf.length < 10 ? [-1, 0] : [Number(buf.readBigUInt64BE(2)), 10];
      if (len < 0 || buf.length < at + len) return;
      const msg = JSON.parse(buf.subarray(at, at + len).toString("utf8"));
      for (const f of msg.frames ?? []) s.offsets.push(f.offset);
      buf = buf.subarray(at + len);
    }
  });
  await waitFor(() => upgraded, "the WebSocket upgrade");
  return s;
}

describe("/api/stream with a slow client", () => {
  it("holds the consumer of a client that stops reading, then delivers everything once it reads again", async () => {
    const first = g.gw.ctx.log.head + 1;
    const s = await rawStream(first);
    s.sock.pause();
    const n = 150_000; // about 20 MB of JSON: more than the kernel's socket buffers and the 4 MB allowance
    for (let i = 0; i < n; i += 50_000) await g.gw.ctx.log.append(frames(50_000, 10_000 + i));
    const head = g.gw.ctx.log.head;
    // the consumer stops short of the head and stays there while the client does not read
    const held = await waitFor(async () => {
      const p = streamConsumers()[0]?.position ?? 0;
      await Bun.sleep(300);
      return p > 0 && p < head && streamConsumers()[0]?.position === p && p;
    }, "the stream's consumer to be held", 20_000, 0);
    expect(head - held).toBeGreaterThan(10_000);
    s.sock.resume();
    await waitFor(() => s.offsets.length === n, "every frame after the client reads again", 30_000);
    expect(s.offsets[0]).toBe(first);
    expect(s.offsets[n - 1]).toBe(head);
    expect(s.offsets.every((o, i) => o === first + i)).toBe(true);
    s.sock.destroy();
    await waitFor(() => streamConsumers().length === 0, "the stream's consumer to stop");
  }, 60_000);
});
