// The command executor: commands from the log go to the owning driver's write, acks are appended
// with the cursor, expired commands are never executed, and a restart never executes a command twice.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Value as TV } from "@sinclair/typebox/value";
import { Catalog, nowMicros, Variable, type AckFrame, type CmdFrame, type Logged, type Variable as VariableT } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { CommandExecutor, DRIVER_API_VERSION, DriverManager, EXECUTING_EVENT, OUTCOME_UNKNOWN, type Driver, type DriverFactory, type WriteResult } from "../../drivers/index.ts";
import { failLogReads } from "../helpers/faults.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

/** A sink driver with a programmable device: records every write it is given. */
class FakeSink implements Driver {
  static writes: { id: string; tag: string; value: unknown }[] = [];
  static behaviour: (cmd: CmdFrame) => Promise<WriteResult> = async () => ({ ok: true });
  meta() {
    return { name: "fake", kind: "sink" as const, apiVersion: DRIVER_API_VERSION, features: ["write"] };
  }
  init() {}
  async connect() {}
  async readLoop(tx: { heartbeat(): void }, signal: AbortSignal) {
    while (!signal.aborted) {
      tx.heartbeat();
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async write(cmd: CmdFrame): Promise<WriteResult> {
    FakeSink.writes.push({ id: cmd.id, tag: cmd.tag, value: cmd.value });
    return FakeSink.behaviour(cmd);
  }
  async shutdown() {}
}

class Broken extends FakeSink {
  override init(): void {
    throw new Error("bad config");
  }
}

const factories = new Map<string, DriverFactory>([
  ["fake", () => new FakeSink()],
  ["broken", () => new Broken()],
]);
const tag = (t: Partial<VariableT>): VariableT => TV.Default(Variable, { driver: "plc", type: "int16", access: "RW", ...t }) as VariableT;
const tags = [tag({ tag: "a/sp" }), tag({ tag: "b/sp", driver: "plc2" }), tag({ tag: "c/sp", driver: "dead" })];

let dir: ReturnType<typeof tempDir>;
let path: string;
let log: EventLog;
let drivers: DriverManager;
let exec: CommandExecutor | null;

async function open(): Promise<void> {
  log = await EventLog.open({ path, maxDelayMs: 1 });
  drivers = new DriverManager({ log, factories, settings: { watchdogMs: 0 } });
  drivers.add({ id: "plc", type: "fake", enabled: true, config: {} }, undefined, tags.filter((t) => t.driver === "plc"));
  drivers.add({ id: "plc2", type: "fake", enabled: true, config: {} }, undefined, tags.filter((t) => t.driver === "plc2"));
  drivers.add({ id: "dead", type: "broken", enabled: true, config: {} }, undefined, tags.filter((t) => t.driver === "dead"));
  await waitFor(() => drivers.status().every((s) => s.state === "Active" || s.state === "Connected" || s.state === "Fault"), "drivers up");
}
async function close(): Promise<void> {
  await exec?.stop();
  exec = null;
  await drivers.stop();
  await log.close();
}
function startExecutor(writeTimeoutMs = 5000): CommandExecutor {
  exec = new CommandExecutor({ log, drivers, catalog: new Catalog(tags), writeTimeoutMs });
  exec.start();
  return exec;
}
let n = 0;
const cmd = (t: string, value: number, ttlMs = 30_000): CmdFrame => ({ kind: "cmd", id: `c${++n}`, tag: t, value, origin: "rest", actor: "alice", tenant: "default", ts: nowMicros(), expiresAt: nowMicros() + ttlMs * 1000 });
async function ackOf(id: string, timeoutMs = 10_000): Promise<Logged<AckFrame>> {
  return await waitFor(async () => {
    for await (const f of log.read({ from: 1, kinds: ["ack"] })) if (f.kind === "ack" && f.cmd === id) return f;
    return null;
  }, `ack of ${id}`, timeoutMs);
}

beforeEach(async () => {
  dir = tempDir();
  path = join(dir.path, "log.duckdb");
  FakeSink.writes = [];
  FakeSink.behaviour = async () => ({ ok: true });
  await open();
});
afterEach(async () => {
  await close();
  dir.cleanup();
});

describe("command executor", () => {
  it("executes a command on the owning driver and commits the ack with its cursor", async () => {
    startExecutor();
    const c = cmd("a/sp", 5);
    await log.append([c]);
    const ack = await ackOf(c.id);
    expect(ack).toMatchObject({ ok: true, status: "ok", tag: "a/sp", source: "plc" });
    expect(FakeSink.writes).toEqual([{ id: c.id, tag: "a/sp", value: 5 }]);
    await waitFor(() => log.cursor("executor") >= (c as Logged<CmdFrame>).offset, "cursor past the command");
    const markers = [];
    for await (const f of log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === EXECUTING_EVENT) markers.push(f);
    expect(markers).toEqual([expect.objectContaining({ source: "plc", tag: "a/sp", data: { cmd: c.id } })]);
    expect(markers[0]!.offset).toBeLessThan(ack.offset);
  });

  it("acks an expired command as expired and never calls the device", async () => {
    const c = cmd("a/sp", 5, -1);
    await log.append([c]);
    startExecutor();
    expect(await ackOf(c.id)).toMatchObject({ ok: false, status: "expired" });
    expect(FakeSink.writes).toEqual([]);
  });

  it("acks the device's refusal, an exception and a timeout as errors and keeps going, never overtaking a write still under way", async () => {
    let release!: () => void;
    FakeSink.behaviour = async (c) => {
      if (c.value === 1) return { ok: false, error: "exception 2 (illegal data address)" };
      if (c.value === 2) throw new Error("socket closed");
      if (c.value === 3) return await new Promise<WriteResult>((r) => (release = () => r({ ok: true })));
      return { ok: true };
    };
    startExecutor(300);
    const cs = [cmd("a/sp", 1), cmd("a/sp", 2), cmd("a/sp", 3), cmd("a/sp", 4)];
    await log.append(cs);
    expect(await ackOf(cs[0]!.id)).toMatchObject({ ok: false, status: "error", error: "exception 2 (illegal data address)" });
    expect(await ackOf(cs[1]!.id)).toMatchObject({ ok: false, status: "error", error: "Error: socket closed" });
    expect(await ackOf(cs[2]!.id)).toMatchObject({ ok: false, status: "error", error: expect.stringContaining("timed out after 300 ms") });
    // the timed-out write is still at the device: the next one is refused unwritten rather than sent past it
    expect(await ackOf(cs[3]!.id)).toMatchObject({ ok: false, status: "error", error: expect.stringContaining("previous write to this device has not finished") });
    expect(FakeSink.writes.map((w) => w.value)).toEqual([1, 2, 3]);
    await waitFor(() => log.cursor("executor") >= (cs[3] as Logged<CmdFrame>).offset, "cursor at the last command");
    release();
    const next = cmd("a/sp", 5);
    await log.append([next]);
    expect(await ackOf(next.id)).toMatchObject({ ok: true, status: "ok" });
    expect(FakeSink.writes.map((w) => w.value)).toEqual([1, 2, 3, 5]);
  });

  it("acks an error when the owning driver is in Fault or the tag is unknown", async () => {
    startExecutor();
    const a = cmd("c/sp", 1);
    const b = cmd("nope", 1);
    await log.append([a, b]);
    expect(await ackOf(a.id)).toMatchObject({ ok: false, status: "error", error: "driver 'dead' is not running (state Fault)" });
    expect(await ackOf(b.id)).toMatchObject({ ok: false, status: "error", error: "unknown tag 'nope'" });
    expect(FakeSink.writes).toEqual([]);
  });

  it("does not let a slow device hold up another driver's writes", async () => {
    let release!: () => void;
    FakeSink.behaviour = async (c) => {
      if (c.tag === "a/sp") await new Promise<void>((r) => (release = r));
      return { ok: true };
    };
    startExecutor();
    const slow = cmd("a/sp", 1);
    const fast = cmd("b/sp", 2);
    await log.append([slow, fast]);
    expect(await ackOf(fast.id)).toMatchObject({ ok: true });
    // the cursor cannot pass the slow command before its ack
    expect(log.cursor("executor")).toBeLessThan((slow as Logged<CmdFrame>).offset);
    await waitFor(() => release, "slow write started");
    release();
    expect(await ackOf(slow.id)).toMatchObject({ ok: true });
    await waitFor(() => log.cursor("executor") >= (fast as Logged<CmdFrame>).offset, "cursor past both");
  });

  it("after a restart acks a command that had started as outcome unknown and executes one that had not, each once", async () => {
    // the state a crash leaves: cmd 1 marked (device call under way), cmd 2 committed only, cmd 3 acked
    const [c1, c2, c3] = [cmd("a/sp", 1), cmd("a/sp", 2), cmd("a/sp", 3)];
    await log.append([c1, c2, c3]);
    await log.append([{ kind: "event", type: EXECUTING_EVENT, source: "plc", tag: "a/sp", ts: nowMicros(), data: { cmd: c1.id } }]);
    await log.append([{ kind: "ack", cmd: c3.id, tag: "a/sp", ok: true, status: "ok", code: "ok", ts: nowMicros(), source: "plc" }]);
    await close();
    await open();
    startExecutor();
    expect(await ackOf(c1.id)).toMatchObject({ ok: false, status: "error", error: OUTCOME_UNKNOWN });
    expect(await ackOf(c2.id)).toMatchObject({ ok: true, status: "ok" });
    await waitFor(() => log.cursor("executor") >= (c3 as Logged<CmdFrame>).offset, "cursor past all three");
    expect(FakeSink.writes.map((w) => w.id)).toEqual([c2.id]);
    let acks = 0;
    for await (const f of log.read({ from: 1, kinds: ["ack"] })) acks += f.kind === "ack" ? 1 : 0;
    expect(acks).toBe(3);
    // and a second restart executes nothing again
    await close();
    await open();
    startExecutor();
    const c4 = cmd("a/sp", 4);
    await log.append([c4]);
    await ackOf(c4.id);
    expect(FakeSink.writes.map((w) => w.id)).toEqual([c2.id, c4.id]);
  });

  it("keeps executing after a log read error, which shows in its status and the log's consumer list", async () => {
    const exec = startExecutor();
    await waitFor(() => exec.status()?.state === "running", "the executor running");
    const faults = failLogReads(log, 1, (o) => o.kinds?.includes("cmd") === true);
    const c = cmd("a/sp", 7);
    await log.append([c]);
    expect(await ackOf(c.id)).toMatchObject({ ok: true, code: "ok" });
    expect(faults.thrown).toBe(1);
    expect(exec.status()).toMatchObject({ name: "executor", errors: 1, lastError: "Error: injected read failure" });
    expect(log.consumers().find((s) => s.name === "executor")?.errors).toBe(1);
    expect(FakeSink.writes.map((w) => w.id)).toEqual([c.id]);
  });

  it("never lets the cursor pass a command whose ack failed to commit: after the retry it is acked once, not lost", async () => {
    // a log whose commit of c1's ack fails once (as a full disk or an I/O error would)
    const [c1, c2] = [cmd("a/sp", 1), cmd("b/sp", 2)];
    let failed = 0;
    const failing = new Proxy(log, {
      get(target, prop, receiver) {
        if (prop === "append") {
          return (frames: AckFrame[], opts?: unknown) =>
            frames.some((f) => f.kind === "ack" && f.cmd === c1.id) && failed++ === 0
              ? Promise.reject(new Error("commit failed (injected)"))
              : target.append(frames, opts as undefined);
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const errors: unknown[] = [];
    exec = new CommandExecutor({ log: failing, drivers, catalog: new Catalog(tags), onError: (e) => errors.push(e) });
    exec.start();
    await log.append([c1, c2]);
    expect(await ackOf(c2.id)).toMatchObject({ ok: true });
    // the loop restarted from the cursor: c1 had a marker and no committed ack -> outcome unknown, once
    expect(await ackOf(c1.id)).toMatchObject({ ok: false, status: "error", error: OUTCOME_UNKNOWN });
    await waitFor(() => log.cursor("executor") >= (c2 as Logged<CmdFrame>).offset, "cursor past both");
    expect(errors).toHaveLength(1);
    expect(FakeSink.writes.filter((w) => w.id === c1.id || w.id === c2.id).map((w) => w.id).sort()).toEqual([c1.id, c2.id].sort());
    let acks = 0;
    for await (const f of log.read({ from: 1, kinds: ["ack"] })) if (f.kind === "ack" && (f.cmd === c1.id || f.cmd === c2.id)) acks++;
    expect(acks).toBe(2);
  });
});
