// A WebSocket stream lives as long as its token: at the token's exp the gateway sends the reason and
// closes with 4401 "token expired", and no frame is delivered after that.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { decodeJwt } from "jose";
import type { Frame } from "../../schemas/index.ts";
import { STREAM_CLOSE_UNAUTHORIZED } from "../../server/api/query.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}", clockToleranceSec: 0 }\nwatchConfig: false\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": "tags:\n  - { tag: a, driver: sim, type: float64 }\n",
  });
});
afterAll(async () => g?.stop());

const frame = (v: number): Frame => ({ kind: "data", tag: "a", value: v, ts: Date.now() * 1000, quality: 0, source: "sim" });

async function openStream(expiresIn: number) {
  const tok = await token(null, { claims: { scope: "read" }, expiresIn });
  const ws = new WebSocket(`${g.url.replace("http", "ws")}/api/stream?token=${tok}`);
  const s = { hello: false, values: [] as number[], error: null as string | null, closed: null as { code: number; reason: string; atMs: number } | null };
  ws.onmessage = (m) => {
    const msg = JSON.parse(String(m.data));
    if (msg.hello) s.hello = true;
    if (msg.error) s.error = msg.error;
    for (const f of msg.frames ?? []) s.values.push(f.value);
  };
  ws.onclose = (e) => (s.closed = { code: e.code, reason: e.reason, atMs: Date.now() });
  await waitFor(() => s.hello, "the stream's hello");
  return { ws, s, expMs: decodeJwt(tok).exp! * 1000 };
}

describe("/api/stream and its token's expiry", () => {
  it("closes the stream at the token's exp with 4401 'token expired' after sending the reason", async () => {
    const { s, expMs } = await openStream(2);
    await g.gw.ctx.log.append([frame(1)]);
    await waitFor(() => s.values.length === 1, "a frame before expiry");
    const closed = await waitFor(() => s.closed, "the stream closed at expiry", 6000);
    expect(closed.code).toBe(STREAM_CLOSE_UNAUTHORIZED);
    expect(closed.reason).toBe("token expired");
    expect(s.error).toBe("token_expired");
    // at exp, not before it; generous after it (two shared cores)
    expect(closed.atMs).toBeGreaterThanOrEqual(expMs - 50);
    expect(closed.atMs).toBeLessThan(expMs + 1500);
    await g.gw.ctx.log.append([frame(2)]);
    await Bun.sleep(200); // nothing to await: a frame that must not come
    expect(s.values).toEqual([1]);
    await waitFor(() => g.gw.ctx.log.consumers().every((c) => !c.name.startsWith("stream-")), "the stream's consumer stopped");
  });

  it("keeps a stream whose token is still valid open", async () => {
    const long = await openStream(300);
    const short = await openStream(1);
    await waitFor(() => short.s.closed, "the short-lived stream closed", 5000);
    await g.gw.ctx.log.append([frame(3)]);
    await waitFor(() => long.s.values.includes(3), "the long-lived stream still delivering");
    expect(long.s.closed).toBeNull();
    long.ws.close();
  });
});
