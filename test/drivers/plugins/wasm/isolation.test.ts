// Containment through the process boundary: a WebAssembly decoder in its own child process traps, loops
// (checking should_stop, and `loop br 0` never checking it) and grows memory past its ceiling; each
// fault ends in a re-created instance or a killed and restarted child, while the built-in simulator
// driver in this process keeps polling every 10 ms without a gap.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
// the manager and the simulator only: drivers/index.ts would load node-opcua too (seconds of imports)
import { DriverManager } from "../../../../drivers/manager.ts";
import { createSimulator } from "../../../../drivers/simulator/index.ts";
import { Variable, type DriverEntry } from "../../../../schemas/index.ts";
import { EventLog } from "../../../../storage/index.ts";
import { tempDir, waitFor } from "../../../helpers/index.ts";
import { ChildDeadline, WasmChild } from "./child.ts";
import { FIXED_FRAMES, testDecoder } from "./fixtures.ts";

const dir = tempDir();
let log: EventLog;
let mgr: DriverManager;
let child: WasmChild;
const children: WasmChild[] = [];
const payload = (mode: number) => new Uint8Array([mode, 0, 0, 0]);
/** a fault that blocked this process for its whole length would leave a gap at least this long */
const GAP_LIMIT_MS = 400;

async function startChild(): Promise<WasmChild> {
  const c = await WasmChild.start(testDecoder(), { memoryMaxPages: 8, callTimeoutMs: 200 });
  children.push(c);
  return c;
}

/** The longest pause between the simulator's frames while `during` ran. */
async function simulatorGapMs(during: () => Promise<void>): Promise<number> {
  const from = Date.now();
  await during();
  const to = Date.now();
  await Bun.sleep(50); // the frames of the last poll reach the log
  const ts: number[] = [];
  for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.source === "sim" && f.value !== null) ts.push(f.ts / 1000);
  const inWindow = [from, ...ts.filter((t) => t >= from && t <= to), to];
  let gap = 0;
  for (let i = 1; i < inWindow.length; i++) gap = Math.max(gap, inWindow[i]! - inWindow[i - 1]!);
  return gap;
}

beforeAll(async () => {
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
  mgr = new DriverManager({ log, factories: new Map([["simulator", createSimulator]]), settings: { watchdogMs: 0 } });
  const entry: DriverEntry = { id: "sim", type: "simulator", enabled: true, config: { intervalMs: 10 } };
  mgr.add(entry, undefined, [TypeValue.Default(Variable, { tag: "sim/x", driver: "sim", type: "float64" }) as Variable]);
  await waitFor(async () => {
    for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.source === "sim" && f.value !== null) return true;
    return false;
  }, "the simulator's first frame");
  child = await startChild();
}, 30_000);

afterAll(async () => {
  for (const c of children) c.kill();
  await mgr.stop();
  await log.close();
  dir.cleanup();
});

describe("wasm plugin in a child process", () => {
  it("contains a trap: that payload gives no frames, the instance is re-created, the batch goes on", async () => {
    const gap = await simulatorGapMs(async () => {
      expect(await child.decode([payload(1), payload(0)])).toEqual([[], FIXED_FRAMES]);
    });
    expect(child.lines.some((l) => /error: wasm plugin trapped in decode: .*unreachable.*instance re-created/i.test(l))).toBe(true);
    expect(gap).toBeLessThan(GAP_LIMIT_MS);
  });

  it("stops a loop that checks should_stop at the call's time limit; the same child decodes the next batch", async () => {
    const pid = child.proc.pid;
    const gap = await simulatorGapMs(async () => {
      await expect(child.decode([payload(2)])).rejects.toThrow(/passed its time limit of 200 ms/);
      expect(await child.decode([payload(0)])).toEqual([FIXED_FRAMES]);
    });
    expect(child.proc.pid).toBe(pid);
    expect(child.proc.exitCode).toBeNull();
    expect(gap).toBeLessThan(GAP_LIMIT_MS);
  });

  it("contains growth past the memory ceiling: the allocator's trap re-creates the instance", async () => {
    const gap = await simulatorGapMs(async () => {
      expect(await child.decode([payload(6), payload(3)])).toEqual([[], [{ tag: "pages", value: 8 }]]);
    });
    expect(gap).toBeLessThan(GAP_LIMIT_MS);
  });

  it("kills the child at the deadline when a loop never checks should_stop (loop br 0); a new child decodes", async () => {
    const spinning = child;
    const gap = await simulatorGapMs(async () => {
      const t0 = performance.now();
      await expect(spinning.decode([payload(5)], 1000)).rejects.toBeInstanceOf(ChildDeadline);
      expect(await spinning.proc.exited).not.toBe(0);
      expect(spinning.proc.signalCode).toBe("SIGKILL");
      expect(performance.now() - t0).toBeLessThan(3000);
      child = await startChild();
      expect(await child.decode([payload(0)])).toEqual([FIXED_FRAMES]);
    });
    // the spin lasted the whole 1 s deadline: a gap under 400 ms shows it never blocked this process
    expect(gap).toBeLessThan(GAP_LIMIT_MS);
  }, 20_000);
});
