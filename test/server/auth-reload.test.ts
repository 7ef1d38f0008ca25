// Auth follows its keys: a reload that rotates auth.hs256Secret or removes a JWKS key applies at once
// (the old token is refused with 401 and writes nothing to the PLC, the new one writes), a stream
// opened with a revoked key is closed, and a reload whose key file cannot be read is refused and keeps
// the running keys. A real gateway, its config files on disk and a real Modbus TCP server.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { STREAM_CLOSE_UNAUTHORIZED } from "../../server/api/query.ts";
import { reloadConfig } from "../../server/reload.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { configFiles, HS_SECRET, makeKeys, startPlc, token, type Keys } from "./commands-fixture.ts";

const NEW_SECRET = "the-rotated-secret-of-at-least-32-characters";
let keys: Keys;
let plc: ModbusTcpServer;
let writes: Map<number, number>;
let t: TestGateway;
let dir: ReturnType<typeof tempDir>;
const gatewayYml = () => join(dir.path, "config", "gateway.yml");
const jwksFile = () => join(dir.path, "jwks.json");

beforeAll(async () => {
  keys = await makeKeys();
  ({ plc, writes } = await startPlc());
  dir = tempDir();
  // watchConfig off: each test calls reloadConfig itself, so that the moment of the swap is known
  t = await startGateway(configFiles(dir.path, plc.port, keys, "watchConfig: false\ncommands: { ackTimeoutMs: 10000 }"), { keepDir: dir.path });
  await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver to be Active", 20_000);
});
afterAll(async () => {
  await t?.stop();
  await plc?.stop();
  dir?.cleanup();
});

const totalWrites = () => [...writes.values()].reduce((a, b) => a + b, 0);
const put = async (value: number, tok: string) => {
  const r = await fetch(`${t.url}/api/tags/line1/sp/temp`, { method: "PUT", headers: { "content-type": "application/json", authorization: `Bearer ${tok}` }, body: JSON.stringify({ value }) });
  return { status: r.status, body: (await r.json()) as Record<string, any> };
};
const secretKey = (s: string) => new TextEncoder().encode(s);

describe("reload of auth keys", () => {
  it("refuses the old secret's token with 401 and accepts the new secret's once auth.hs256Secret is rotated", async () => {
    const old = await token(keys);
    expect((await put(101, old)).status).toBe(200);
    expect(plc.holding[10]).toBe(101);

    writeFileSync(gatewayYml(), readFileSync(gatewayYml(), "utf8").replace(HS_SECRET, NEW_SECRET));
    const r = await reloadConfig(t.gw.ctx);
    expect(r).toMatchObject({ ok: true, authKeysChanged: true });

    const before = totalWrites();
    const refused = await put(102, old);
    expect(refused).toMatchObject({ status: 401, body: { error: "bad_signature" } });
    expect(totalWrites()).toBe(before);
    expect(plc.holding[10]).toBe(101);
    expect((await fetch(`${t.url}/api/commands`, { headers: { authorization: `Bearer ${old}` } })).status).toBe(401);

    const rotated = await token(keys, { key: secretKey(NEW_SECRET) });
    expect((await put(103, rotated)).status).toBe(200);
    expect(plc.holding[10]).toBe(103);
    expect((await fetch(`${t.url}/api/tags`, { headers: { authorization: `Bearer ${rotated}` } })).status).toBe(200);
  });

  it("refuses tokens of a JWKS key removed from the file, and keeps accepting the remaining key", async () => {
    const ed = await token(keys, { alg: "EdDSA" });
    const rsa = await token(keys, { alg: "RS256" });
    expect((await put(201, ed)).status).toBe(200);

    writeFileSync(jwksFile(), JSON.stringify({ keys: keys.jwks.keys.filter((k) => k.kid !== "ed1") }));
    expect(await reloadConfig(t.gw.ctx)).toMatchObject({ ok: true, authKeysChanged: true });

    const before = totalWrites();
    expect(await put(202, ed)).toMatchObject({ status: 401, body: { error: "bad_signature" } });
    expect(totalWrites()).toBe(before);
    expect(plc.holding[10]).toBe(201);
    expect((await put(203, rsa)).status).toBe(200);
    expect(plc.holding[10]).toBe(203);
  });

  it("closes an open stream whose key a reload removed, with close code 4401 and the reason", async () => {
    writeFileSync(jwksFile(), JSON.stringify(keys.jwks)); // both keys back
    await reloadConfig(t.gw.ctx);
    const ed = await token(keys, { alg: "EdDSA", claims: { scope: "read" } });
    const ws = new WebSocket(`${t.url.replace("http", "ws")}/api/stream?token=${ed}`);
    const s = { hello: false, error: null as string | null, closed: null as { code: number; reason: string } | null };
    ws.onmessage = (m) => {
      const msg = JSON.parse(String(m.data));
      if (msg.hello) s.hello = true;
      if (msg.error) s.error = msg.error;
    };
    ws.onclose = (e) => (s.closed = { code: e.code, reason: e.reason });
    await waitFor(() => s.hello, "the stream's hello");

    writeFileSync(jwksFile(), JSON.stringify({ keys: keys.jwks.keys.filter((k) => k.kid !== "ed1") }));
    expect(await reloadConfig(t.gw.ctx)).toMatchObject({ ok: true, authKeysChanged: true });
    const closed = await waitFor(() => s.closed, "the stream closed", 5000);
    expect(closed).toEqual({ code: STREAM_CLOSE_UNAUTHORIZED, reason: "credentials revoked" });
    expect(s.error).toBe("bad_signature");
  });

  it("refuses a reload whose JWKS cannot be read, and keeps the running keys", async () => {
    const rsa = await token(keys, { alg: "RS256" });
    writeFileSync(jwksFile(), "{ not json");
    const r = await reloadConfig(t.gw.ctx);
    expect(r.ok).toBe(false);
    expect(r.error).toContain("auth.jwksFile");
    expect((await put(301, rsa)).status).toBe(200);
    expect(plc.holding[10]).toBe(301);
    writeFileSync(jwksFile(), JSON.stringify(keys.jwks));
  });

  it("does not report a key change when a reload leaves the keys as they were", async () => {
    await reloadConfig(t.gw.ctx);
    expect(await reloadConfig(t.gw.ctx)).toMatchObject({ ok: true, authKeysChanged: false });
  });
});

describe("watching the key files", () => {
  it("applies an edit of the auth.hs256SecretFile without a YAML edit", async () => {
    const g = await startGateway({
      "gateway.yml": "auth: { hs256SecretFile: secret.txt }\n",
      "secret.txt": `${HS_SECRET}\n`,
      "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
      "variables.yml": "tags:\n  - { tag: a, driver: sim, type: float64 }\n",
    });
    try {
      const list = async (tok: string) => (await fetch(`${g.url}/api/tags`, { headers: { authorization: `Bearer ${tok}` } })).status;
      const old = await token(null);
      expect(await list(old)).toBe(200);
      writeFileSync(join(g.dir, "config", "secret.txt"), `${NEW_SECRET}\n`);
      await waitFor(async () => (await list(old)) === 401, "the old secret refused after the file changed", 5000);
      expect(await list(await token(null, { key: secretKey(NEW_SECRET) }))).toBe(200);
    } finally {
      await g.stop();
    }
  });
});
