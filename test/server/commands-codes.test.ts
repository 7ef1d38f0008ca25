// PUT /api/tags/:tag answers from its ack's code (schemas/acks.ts ACK_CODE_INFO): 409 never written,
// 502 the device refused, 504 outcome unknown (read back before retrying), 202 no ack in time. A real
// Modbus TCP server behind a proxy that can hold write answers (a device that took a write and went
// silent); the executor's short writeTimeoutMs turns that into timeout_outcome_unknown.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ACK_CODE_INFO, ACK_CODES, type AckFrame, type CmdFrame, type Logged } from "../../schemas/index.ts";
import { commandView, notDoneAnswer } from "../../server/api/commands.ts";
import type { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { configFiles, startPlcBehindProxy, token, type HoldingProxy, type Keys } from "./commands-fixture.ts";

let keys: Keys;
let plc: ModbusTcpServer;
let writes: Map<number, number>;
let proxy: HoldingProxy;
let t: TestGateway;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  ({ keys, plc, writes, proxy } = await startPlcBehindProxy());
  dir = tempDir();
  // the endpoint waits long for an answer: the executor's writeTimeoutMs (400 ms) decides first
  t = await startGateway(configFiles(dir.path, proxy.port, keys, "commands: { ackTimeoutMs: 5000, writeTimeoutMs: 400 }", 60_000), { keepDir: dir.path });
  await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver to be Active", 20_000);
});
afterAll(async () => {
  proxy.hold = false;
  await t?.stop();
  await proxy?.stop();
  await plc?.stop();
  dir?.cleanup();
});

type Answer = { status: number; headers: Headers; body: Record<string, any> };
const put = async (tag: string, body: unknown): Promise<Answer> => {
  const res = await fetch(`${t.url}/api/tags/${tag}`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${await token(keys)}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
};
const total = () => [...writes.values()].reduce((a, b) => a + b, 0);
/** a tag the catalog gains for one test (like a reload would add it) */
const addTag = (name: string, change: Record<string, unknown>) => {
  const base = t.gw.ctx.catalog.get("line1/sp/temp")!;
  t.gw.ctx.catalog.replace([...t.gw.ctx.catalog.all(), { ...base, tag: name, ...change }]);
};

describe("PUT /api/tags/:tag maps the ack code", () => {
  it("answers 200 with code ok in the command and its ack", async () => {
    const r = await put("line1/sp/temp", { value: 42 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "ok", code: "ok", ack: { ok: true, code: "ok" } });
    expect(plc.holding[10]).toBe(42);
  });

  it("answers 409 command_expired, never written, for a command that expired before execution", async () => {
    const before = total();
    const r = await put("line1/sp/temp", { value: 43, ttlMs: 1 });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ error: "command_expired", code: "expired", applied: false, command: { status: "expired", code: "expired", ack: { code: "expired" } } });
    expect(total()).toBe(before);
  });

  it("answers 409 not_written for a tag whose driver is not running", async () => {
    addTag("line1/sp/orphan", { driver: "gone" });
    const before = total();
    const r = await put("line1/sp/orphan", { value: 1 });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ error: "not_written", code: "driver_not_running", applied: false, command: { code: "driver_not_running" } });
    expect(r.body.message).toContain("gone");
    expect(total()).toBe(before);
  });

  it("answers 502 write_failed when the device refuses the write", async () => {
    // the server has 1000 registers: one past the end gets exception 02 from the device
    addTag("line1/sp/ghost", { address: { area: "holding", address: 5000, byteOrder: "BE", wordOrder: "BE" } });
    const r = await put("line1/sp/ghost", { value: 1 });
    expect(r.status).toBe(502);
    expect(r.body.error).toBe("write_failed");
    expect(["device_error", "device_address_error"]).toContain(r.body.code);
    expect(r.body).toMatchObject({ applied: false, command: { status: "error", code: r.body.code, ack: { ok: false, code: r.body.code } } });
    expect(Object.keys(r.body).sort()).toEqual(["applied", "code", "command", "error", "message"]);
  });

  it("answers 504 outcome_unknown when the device took the write but did not answer, and says to read back", async () => {
    proxy.hold = true;
    const before = writes.get(10) ?? 0;
    const r = await put("line1/sp/temp", { value: 44 });
    expect(r.status).toBe(504);
    expect(r.body).toMatchObject({ error: "outcome_unknown", code: "timeout_outcome_unknown", applied: "unknown", command: { code: "timeout_outcome_unknown" } });
    expect(r.body.message).toContain("may or may not have been applied");
    expect(r.body.message).toContain("read the tag back before retrying");
    // it did reach the device: a retry without reading back would have written twice
    await waitFor(() => writes.get(10) === before + 1, "the device to take the write");
    expect(plc.holding[10]).toBe(44);
  });

  it("answers 409 not_written (device_busy) for the next write while the unanswered one is under way, and does not send it", async () => {
    const before = total();
    const r = await put("line1/sp/speed", { value: 9 });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ error: "not_written", code: "device_busy", applied: false });
    expect(total()).toBe(before);
  });

  it("answers 202 with Location when no ack comes within ackTimeoutMs; the command shows its code later", async () => {
    const cfg = t.gw.ctx.config.gateway.commands;
    const saved = cfg.ackTimeoutMs;
    cfg.ackTimeoutMs = 50;
    let r: Answer;
    try {
      r = await put("line1/sp/speed", { value: 10 });
    } finally {
      cfg.ackTimeoutMs = saved;
    }
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ status: "pending", code: "pending", ack: null });
    const location = r.headers.get("location")!;
    expect(location).toBe(`/api/commands/${r.body.id}`);
    const auth = { authorization: `Bearer ${await token(keys)}` };
    const later = await waitFor(async () => {
      const v = (await (await fetch(`${t.url}${location}`, { headers: auth })).json()) as Record<string, any>;
      return v.code !== "pending" && v;
    }, "the command's ack");
    expect(later).toMatchObject({ status: "error", code: "device_busy", ack: { code: "device_busy" } });
  });
});

describe("the answer of every ack code that is not ok", () => {
  const cmd = { kind: "cmd", id: "c1", tag: "a", value: 1, origin: "rest", actor: "x", tenant: "t", ts: 1e15, expiresAt: 1e15 + 3e7, offset: 1, loggedAt: 1e15 } as Logged<CmdFrame>;
  const classOf: Record<number, string> = { 403: "write_refused", 404: "write_refused", 422: "write_refused", 409: "not_written", 502: "write_failed", 504: "outcome_unknown" };
  for (const code of ACK_CODES.filter((c) => c !== "ok")) {
    it(`answers ${code} with HTTP ${ACK_CODE_INFO[code].http} and the code beside the text`, () => {
      const ack = { kind: "ack", cmd: "c1", tag: "a", ok: false, status: code === "expired" ? "expired" : "error", code, error: "what the driver said", ts: 1e15, source: "plc", offset: 2, loggedAt: 1e15 + 1000 } as Logged<AckFrame>;
      const { status, body } = notDoneAnswer(ack, commandView({ cmd, ack }));
      expect(status).toBe(ACK_CODE_INFO[code].http);
      expect(body).toMatchObject({ error: code === "expired" ? "command_expired" : classOf[status], code, applied: ACK_CODE_INFO[code].applied, command: { code, ack: { code } } });
      expect(body.message).toStartWith("what the driver said");
      // an outcome nobody can vouch for says so, and what to do
      expect(body.message.includes("read the tag back before retrying")).toBe(ACK_CODE_INFO[code].applied === "unknown");
    });
  }
});
