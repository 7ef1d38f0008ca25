// The command bus: submit commits a CmdFrame, waitForAck resolves with the AckFrame once committed,
// ids are idempotent, the audit trail is read back from the log table, and a log read error of the
// bus's consumer neither stops it nor turns a committed ack into "no ack".
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { nowMicros, type AckFrame, type CmdFrame, type Logged } from "../../schemas/index.ts";
import type { CommandBusOptions } from "../../storage/commands.ts";
import { CommandBus, EventLog } from "../../storage/index.ts";
import { failLogReads } from "../helpers/faults.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let bus: CommandBus;
beforeEach(async () => {
  dir = tempDir();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 1 });
  bus = new CommandBus(log);
  bus.start();
});
afterEach(async () => {
  await bus.stop();
  await log.close();
  dir.cleanup();
});

const ack = (cmd: CmdFrame, ok = true): AckFrame => ({ kind: "ack", cmd: cmd.id, tag: cmd.tag, ok, status: ok ? "ok" : "error", code: ok ? "ok" : "device_error", ...(ok ? {} : { error: "device said no" }), ts: nowMicros(), source: "plc" });
const base = { tag: "a/sp", value: 42, origin: "rest" as const, actor: "alice", tenant: "t1" };

describe("command bus", () => {
  it("resolves submit once the CmdFrame is committed, with its offset and expiry", async () => {
    const before = nowMicros();
    const cmd = await bus.submit({ ...base, ttlMs: 5000 });
    expect(cmd.offset).toBeGreaterThan(0);
    expect(log.head).toBeGreaterThanOrEqual(cmd.offset);
    expect(cmd).toMatchObject({ kind: "cmd", tag: "a/sp", value: 42, origin: "rest", actor: "alice", tenant: "t1" });
    expect(cmd.expiresAt - cmd.ts).toBe(5_000_000);
    expect(cmd.ts).toBeGreaterThanOrEqual(before);
  });

  it("resolves waitForAck with the ack appended later, and execute with both", async () => {
    const run = bus.execute(base, 10_000);
    const cmd = await new Promise<Logged<CmdFrame>>((r) => bus.once("command", r));
    await log.append([ack(cmd)]);
    const { cmd: c, ack: a } = await run;
    expect(c.id).toBe(cmd.id);
    expect(a).toMatchObject({ kind: "ack", cmd: cmd.id, ok: true, status: "ok" });
    expect(a!.offset).toBeGreaterThan(c.offset);
  });

  it("answers null from waitForAck when no ack comes within the timeout", async () => {
    const cmd = await bus.submit(base);
    const t0 = performance.now();
    expect(await bus.waitForAck(cmd.id, 100)).toBeNull();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
  });

  it("returns an ack committed before the wait started", async () => {
    const cmd = await bus.submit(base);
    await log.append([ack(cmd, false)]);
    const a = await bus.waitForAck(cmd.id, 5000);
    expect(a).toMatchObject({ ok: false, status: "error", error: "device said no" });
  });

  it("does not append a command twice for the same id, also after a restart", async () => {
    const [a, b] = await Promise.all([bus.submit({ ...base, id: "k1" }), bus.submit({ ...base, id: "k1", value: 7 })]);
    expect(a.offset).toBe(b.offset);
    await bus.stop();
    await log.close();
    log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 1 });
    bus = new CommandBus(log);
    bus.start();
    const head = log.head;
    const again = await bus.submit({ ...base, id: "k1", value: 9 });
    expect(again.offset).toBe(a.offset);
    expect(again.value).toBe(42);
    expect(log.head).toBe(head);
    let cmds = 0;
    for await (const f of log.read({ from: 1, kinds: ["cmd"] })) cmds += f.kind === "cmd" ? 1 : 0;
    expect(cmds).toBe(1);
  });

  it("finds old commands and acks in the log table after a restart and lists the audit trail", async () => {
    const c1 = await bus.submit({ ...base, value: 1 });
    const c2 = await bus.submit({ ...base, tag: "b/sp", value: 2 });
    await log.append([ack(c1)]);
    await bus.stop();
    await log.close();
    log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 1, tailFrames: 0 });
    bus = new CommandBus(log);
    bus.start();
    expect((await bus.waitForAck(c1.id, 2000))?.ok).toBe(true);
    const rec = await bus.record(c2.id);
    expect(rec).toMatchObject({ cmd: { id: c2.id, tag: "b/sp", value: 2, actor: "alice" }, ack: null });
    expect(await bus.record("nope")).toBeNull();
    const all = await bus.list();
    expect(all.map((r) => r.cmd.id)).toEqual([c2.id, c1.id]);
    expect(all[1]!.ack?.status).toBe("ok");
    expect((await bus.list({ tag: "a/sp" })).map((r) => r.cmd.id)).toEqual([c1.id]);
    expect(await bus.list({ sinceMicros: nowMicros() + 1e9 })).toEqual([]);
  });
});

describe("command bus under log read errors", () => {
  /** Replaces the test's bus by one with these options whose consumer's next read fails, and submits a command. */
  async function busWithFailedRead(opts: CommandBusOptions) {
    await bus.stop();
    bus = new CommandBus(log, opts);
    bus.start();
    // the bus's own reads: its consumer reads cmd and ack frames (the log is new per test: no restore needed)
    const fault = failLogReads(log, 1, (o) => o.kinds?.includes("ack") === true);
    const cmd = await bus.submit(base); // its commit wakes the consumer, whose read fails
    await waitFor(() => fault.thrown === 1, "the injected read failure");
    return cmd;
  }
  const retryingAfter = async (opts: CommandBusOptions) => {
    const cmd = await busWithFailedRead(opts);
    await waitFor(() => bus.consumerStatus()?.state === "retrying", "the consumer to retry");
    return cmd;
  };

  it("keeps following after a read error and answers later writes with their real ack", async () => {
    const first = await busWithFailedRead({ retry: { initialMs: 20, maxMs: 100 } });
    await log.append([ack(first)]);
    expect(await bus.waitForAck(first.id, 5000)).toMatchObject({ cmd: first.id, code: "ok" });
    // every write after the failure: its ack comes through the consumer again
    for (let i = 0; i < 3; i++) {
      const run = bus.execute({ ...base, value: i }, 5000);
      const cmd = await new Promise<Logged<CmdFrame>>((r) => bus.once("command", r));
      await log.append([ack(cmd, i !== 1)]);
      const { ack: a } = await run;
      expect(a).toMatchObject({ cmd: cmd.id, ok: i !== 1, code: i !== 1 ? "ok" : "device_error" });
    }
    const s = bus.consumerStatus()!;
    expect(s).toMatchObject({ state: "running", errors: 1 });
    expect(s.lastError).toContain("injected read failure");
  });

  it("answers an ack committed while its consumer waits to retry, from the table, before the timeout", async () => {
    const cmd = await retryingAfter({ retry: { initialMs: 30_000, maxMs: 30_000 }, pollMs: 50 });
    const t0 = performance.now();
    const waiting = bus.waitForAck(cmd.id, 10_000);
    await log.append([ack(cmd)]);
    expect(await waiting).toMatchObject({ cmd: cmd.id, ok: true, code: "ok" });
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it("looks in the table at the timeout before answering that no ack came", async () => {
    // no polling in the meantime: only the check at the timeout can find the ack
    const cmd = await retryingAfter({ retry: { initialMs: 30_000, maxMs: 30_000 }, pollMs: 3_600_000 });
    const waiting = bus.waitForAck(cmd.id, 300);
    await log.append([ack(cmd, false)]);
    expect(await waiting).toMatchObject({ cmd: cmd.id, ok: false, code: "device_error" });
    // and an ack that really is not there is still "none"
    const other = await bus.submit({ ...base, value: 5 });
    expect(await bus.waitForAck(other.id, 100)).toBeNull();
  });
});
