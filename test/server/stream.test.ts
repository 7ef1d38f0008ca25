// The WebSocket stream (/api/stream) reads through a supervised LogConsumer: a log read error is retried
// and the client keeps receiving every frame once, in order; its consumer ends when the client leaves.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
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
