// Setpoint writes end to end: REST PUT with a JWT -> CmdFrame -> executor -> Modbus driver -> a real
// Modbus TCP server on loopback -> AckFrame -> the answer; every refusal leaves nothing on the device.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { SignJWT } from "jose";
import type { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { failLogReads } from "../helpers/faults.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { configFiles, makeKeys, startPlc, token, unsignedToken, type Keys } from "./commands-fixture.ts";

let keys: Keys;
let plc: ModbusTcpServer;
let writes: Map<number, number>;
let t: TestGateway;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  keys = await makeKeys();
  ({ plc, writes } = await startPlc());
  dir = tempDir();
  t = await startGateway(configFiles(dir.path, plc.port, keys, "commands: { ackTimeoutMs: 10000, maxBodyBytes: 256 }"), { keepDir: dir.path });
  await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver to be Active", 20_000);
});
afterAll(async () => {
  await t?.stop();
  await plc?.stop();
  dir?.cleanup();
});

const put = async (tag: string, body: unknown, auth?: string | null, headers: Record<string, string> = {}) => {
  const res = await fetch(`${t.url}/api/tags/${tag}`, {
    method: "PUT",
    headers: { "content-type": "application/json", ...(auth === null ? {} : { authorization: `Bearer ${auth ?? (await token(keys))}` }), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
};
const totalWrites = () => [...writes.values()].reduce((a, b) => a + b, 0);

describe("PUT /api/tags/:tag", () => {
  it("writes the register through the Modbus driver and answers 200 with the ack", async () => {
    const r = await put("line1/sp/temp", { value: 123 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tag: "line1/sp/temp", value: 123, origin: "rest", actor: "alice", tenant: "acme", status: "ok", ack: { ok: true, status: "ok", source: "plc" } });
    expect(plc.holding[10]).toBe(123);
    expect(r.headers.get("location")).toBe(`/api/commands/${r.body.id}`);
  });

  it("records the CmdFrame and the AckFrame in the log with actor and origin", async () => {
    const r = await put("line1/sp/ratio", { value: 0.5 }, await token(keys, { alg: "EdDSA", claims: { sub: "bob" } }));
    expect(r.status).toBe(200);
    const frames = [];
    for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["cmd", "ack"] })) if ((f.kind === "cmd" && f.id === r.body.id) || (f.kind === "ack" && f.cmd === r.body.id)) frames.push(f);
    expect(frames).toEqual([
      expect.objectContaining({ kind: "cmd", tag: "line1/sp/ratio", value: 0.5, origin: "rest", actor: "bob", tenant: "acme" }),
      expect.objectContaining({ kind: "ack", cmd: r.body.id, ok: true, status: "ok", source: "plc" }),
    ]);
    expect(plc.holding[12]).toBe(0x3f00); // float32 0.5, high word first
  });

  it("accepts RS256 tokens from the JWKS", async () => {
    const r = await put("line1/sp/speed", { value: 1500 }, await token(keys, { alg: "RS256" }));
    expect(r.status).toBe(200);
    expect(plc.holding[11]).toBe(1500);
  });

  it("returns the first command for a repeated Idempotency-Key instead of writing twice", async () => {
    const before = writes.get(10) ?? 0;
    const a = await put("line1/sp/temp", { value: 77 }, undefined, { "idempotency-key": "order-1" });
    const b = await put("line1/sp/temp", { value: 77 }, undefined, { "idempotency-key": "order-1" });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    expect(b.headers.get("idempotent-replayed")).toBe("true");
    expect(writes.get(10)! - before).toBe(1);
    const c = await put("line1/sp/temp", { value: 78 }, undefined, { "idempotency-key": "order-1" });
    expect(c.status).toBe(409);
    expect(c.body.error).toBe("idempotency_conflict");
  });

  it("answers every write with its real ack (200) after the command bus's log read failed once", async () => {
    const fault = failLogReads(t.gw.ctx.log, 1, (o) => o.kinds?.includes("ack") === true); // the bus reads cmd + ack
    try {
      const before = writes.get(10) ?? 0;
      for (let i = 0; i < 4; i++) {
        const r = await put("line1/sp/temp", { value: 300 + i });
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ status: "ok", code: "ok", ack: { ok: true, code: "ok" } });
        expect(plc.holding[10]).toBe(300 + i);
      }
      expect(fault.thrown).toBe(1);
      expect(writes.get(10)! - before).toBe(4); // each write reached the device once
      expect(t.gw.ctx.commands.consumerStatus()).toMatchObject({ state: "running", errors: 1 });
    } finally {
      fault.restore();
    }
  });

  it("acks the device's refusal as 502 with the command", async () => {
    // 2000 registers exist; a tag past the end gets exception 2 from the server
    t.gw.ctx.catalog.replace([...t.gw.ctx.catalog.all(), { ...t.gw.ctx.catalog.get("line1/sp/temp")!, tag: "line1/sp/ghost", address: { area: "holding", address: 5000, byteOrder: "BE", wordOrder: "BE" } }]);
    const r = await put("line1/sp/ghost", { value: 1 });
    expect(r.status).toBe(502);
    expect(r.body).toMatchObject({ error: "write_failed", command: { status: "error", ack: { ok: false } } });
  });
});

describe("refusals (each with nothing written to the device)", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, () => Promise<{ status: number; body: Record<string, any> }>, number, string][] = [
    ["no token", () => put("line1/sp/temp", { value: 1 }, null), 401, "missing_token"],
    ["an expired token", async () => put("line1/sp/temp", { value: 1 }, await token(keys, { expiresIn: -120 })), 401, "token_expired"],
    ["a bad signature", async () => put("line1/sp/temp", { value: 1 }, await token(keys, { key: new TextEncoder().encode("another-secret-of-at-least-32-chars!!") })), 401, "bad_signature"],
    ["alg none", () => put("line1/sp/temp", { value: 1 }, unsignedToken()), 401, "alg_refused"],
    ["HS256 signed with the RSA public key (HS/RS confusion)", async () => put("line1/sp/temp", { value: 1 }, await token(keys, { key: new TextEncoder().encode(keys.rsaPublicPem) })), 401, "bad_signature"],
    [
      "an RS256 header on an HMAC signature",
      async () => {
        const hs = await new SignJWT({ sub: "x", tenant: "acme", scope: "write" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime(now() + 60).sign(new TextEncoder().encode(keys.rsaPublicPem));
        const [, payload, sig] = hs.split(".");
        const forged = `${Buffer.from(JSON.stringify({ alg: "RS256", kid: "rsa1" })).toString("base64url")}.${payload}.${sig}`;
        return put("line1/sp/temp", { value: 1 }, forged);
      },
      401,
      "bad_signature",
    ],
    ["a token without tenant", async () => put("line1/sp/temp", { value: 1 }, await token(keys, { claims: { tenant: undefined } })), 401, "invalid_token"],
    ["a token of another tenant", async () => put("line1/sp/temp", { value: 1 }, await token(keys, { claims: { tenant: "globex" } })), 404, "unknown_tag"],
    ["a tag of another tenant (answered as unknown: no enumeration)", () => put("other/sp", { value: 1 }), 404, "unknown_tag"],
    ["a token without write scope", async () => put("line1/sp/temp", { value: 1 }, await token(keys, { claims: { scope: "read" } })), 403, "insufficient_scope"],
    ["a tag outside the token's tag patterns", async () => put("line1/sp/temp", { value: 1 }, await token(keys, { claims: { tags: ["line2/**", "line1/*/speed"] } })), 404, "unknown_tag"],
    ["a read-only tag", () => put("line1/pv/temp", { value: 1 }), 403, "not_writable"],
    ["an unknown tag", () => put("line1/sp/nope", { value: 1 }), 404, "unknown_tag"],
    ["a wrong type", () => put("line1/sp/temp", { value: "hot" }), 400, "type_mismatch"],
    ["a value out of range", () => put("line1/sp/temp", { value: 501 }), 400, "out_of_range"],
    ["a value outside the register type", () => put("line1/sp/speed", { value: 70000 }), 400, "out_of_range"],
    ["a body that is not JSON", () => put("line1/sp/temp", "{value: 1"), 400, "invalid_body"],
    ["a body without value", () => put("line1/sp/temp", { val: 1 }), 400, "invalid_body"],
    ["a body over the size limit", () => put("line1/sp/temp", { value: 1, pad: "x".repeat(1000) }), 413, "body_too_large"],
  ];
  for (const [what, run, status, code] of cases) {
    it(`refuses ${what} with ${status} ${code}`, async () => {
      const before = totalWrites();
      const head = t.gw.ctx.log.head;
      const r = await run();
      expect(r.status).toBe(status);
      expect(r.body.error).toBe(code);
      expect(typeof r.body.message).toBe("string");
      expect(r.body.message.length).toBeGreaterThan(5);
      // nothing reached the device and no command was appended
      expect(totalWrites()).toBe(before);
      let cmds = 0;
      for await (const f of t.gw.ctx.log.read({ from: head + 1, kinds: ["cmd"] })) cmds += f.kind === "cmd" ? 1 : 0;
      expect(cmds).toBe(0);
    });
  }

  it("names the field of a body error", async () => {
    const r = await put("line1/sp/temp", { value: 1.5 });
    expect(r).toMatchObject({ status: 400, body: { error: "type_mismatch", field: "value" } });
  });

  it("accepts a token whose tag patterns cover the tag", async () => {
    const r = await put("line1/sp/speed", { value: 7 }, await token(keys, { claims: { tags: ["line2/**", "line1/*/speed"] } }));
    expect(r.status).toBe(200);
    expect(plc.holding[11]).toBe(7);
  });
});

describe("GET /api/commands", () => {
  it("gives a command's status and the audit trail of the token's tenant", async () => {
    const w = await put("line1/sp/temp", { value: 200 });
    const auth = { authorization: `Bearer ${await token(keys, { alg: "RS256" })}` };
    const one = (await (await fetch(`${t.url}/api/commands/${w.body.id}`, { headers: auth })).json()) as Record<string, any>;
    expect(one).toMatchObject({ id: w.body.id, tag: "line1/sp/temp", value: 200, actor: "alice", origin: "rest", status: "ok", ack: { ok: true } });
    const list = (await (await fetch(`${t.url}/api/commands?tag=line1/sp/temp&since=${new Date(Date.now() - 60_000).toISOString()}`, { headers: auth })).json()) as Record<string, any>[];
    expect(list[0]!.id).toBe(w.body.id);
    expect(list.every((c) => c.tag === "line1/sp/temp" && c.tenant === "acme")).toBe(true);
    const other = await fetch(`${t.url}/api/commands/${w.body.id}`, { headers: { authorization: `Bearer ${await token(keys, { claims: { tenant: "globex" } })}` } });
    expect(other.status).toBe(404);
    expect((await fetch(`${t.url}/api/commands`)).status).toBe(401);
  });

  it("counts writes and errors in the metrics, naming no tag (metrics.tagLabels is off by default)", async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toMatch(/^edge_write_total\{origin="rest"\} [1-9]/m);
    expect(text).toMatch(/^edge_write_error_total [1-9]/m);
    expect(text).not.toContain("line1/sp/");
    expect(text).toMatch(/^edge_write_ack_latency_ms_count [1-9]/m);
    expect(text).toMatch(/^edge_write_refused_total\{reason="out_of_range"\} [1-9]/m);
  });
});
