// The driver manager supervising small fake drivers on a real event log: restart with backoff,
// watchdog for hung drivers, Fault after too many crashes, isolation between drivers, state events
// (the live ones of every step, and the driver.state frames of the real changes in the log).
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { DRIVER_API_VERSION, DriverConfigError, DriverManager, backoffDelay, type Driver, type DriverFactory, type FrameSink, type SupervisorSettings } from "../../drivers/index.ts";
import { Quality, Variable, type DataFrame, type DriverEntry, type EventFrame, type Logged } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

// ---- fake drivers --------------------------------------------------------------------------------
const meta = (name: string) => ({ name, kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read"] });
const tagOf = (id: string) => `${id}/n`;

function frameOf(id: string, n: number): DataFrame {
  return { kind: "data", tag: tagOf(id), value: n, ts: Date.now() * 1000, quality: 0, source: id };
}

const waitAbort = (signal: AbortSignal) => new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener("abort", () => r(), { once: true })));

/** Sends one frame every `everyMs` with a counter that continues across restarts; never fails. */
class HealthyDriver implements Driver {
  n = 0;
  private id = "";
  constructor(private readonly everyMs = 5) {}
  meta = () => meta("healthy");
  init(i: { id: string }) {
    this.id = i.id;
  }
  async connect() {}
  async readLoop(tx: FrameSink, signal: AbortSignal) {
    while (!signal.aborted) {
      await tx.send([frameOf(this.id, this.n++)]);
      await Bun.sleep(this.everyMs);
    }
  }
  async shutdown() {}
}

/** Sends `frames` frames at once, then throws. */
class ThrowingDriver implements Driver {
  private id = "";
  constructor(private readonly frames = 3) {}
  meta = () => meta("throwing");
  init(i: { id: string }) {
    this.id = i.id;
  }
  async connect() {}
  async readLoop(tx: FrameSink) {
    for (let i = 0; i < this.frames; i++) await tx.send([frameOf(this.id, i)]);
    throw new Error("device went away");
  }
  async shutdown() {}
}

/** Connects, then never sends, never resolves, ignores its abort signal. */
class HungDriver implements Driver {
  meta = () => meta("hung");
  init() {}
  async connect() {}
  readLoop() {
    return new Promise<void>(() => undefined);
  }
  async shutdown() {}
}

/** connect() rejects `failures` times (shared across restarts), then succeeds and sends frames. */
class FlakyConnectionDriver extends HealthyDriver {
  constructor(private readonly state: { failures: number }) {
    super(5);
  }
  override async connect() {
    if (this.state.failures > 0) {
      this.state.failures--;
      throw new Error("ECONNREFUSED 127.0.0.1:502");
    }
  }
}

// ---- harness -------------------------------------------------------------------------------------
let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let mgr: DriverManager | undefined;
/** every state the manager went through ('state' events: the live view), with when */
let live: { id: string; state: string; data: Record<string, unknown>; at: number }[] = [];

beforeEach(async () => {
  dir = tempDir();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
});
afterEach(async () => {
  await mgr?.stop();
  mgr = undefined;
  await log.close();
  dir.cleanup();
});

const variable = (tag: string, driver: string) => TypeValue.Default(Variable, { tag, driver, type: "float64" }) as Variable;
const entry = (id: string, type: string, config: Record<string, unknown> = {}): DriverEntry => ({ id, type, enabled: true, config });

function start(factories: Record<string, DriverFactory>, settings: Partial<SupervisorSettings>, ids: [id: string, type: string][]): DriverManager {
  mgr = new DriverManager({ log, factories: new Map(Object.entries(factories)), settings });
  live = [];
  mgr.on("state", (id: string, state: string, _previous: string, data: Record<string, unknown>) => live.push({ id, state, data, at: performance.now() }));
  for (const [id, type] of ids) mgr.add(entry(id, type), undefined, [variable(tagOf(id), id)]);
  return mgr;
}

async function events(source?: string, type?: string): Promise<Logged<EventFrame>[]> {
  const out: Logged<EventFrame>[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) {
    const e = f as Logged<EventFrame>;
    if ((!source || e.source === source) && (!type || e.type === type)) out.push(e);
  }
  return out;
}
const states = async (id: string) => (await events(id, "driver.state")).map((e) => e.data!.state as string);
const liveOf = (id: string) => live.filter((s) => s.id === id);
const liveStates = (id: string) => liveOf(id).map((s) => s.state);

/** The values a driver logged (not the manager's Bad frames, which carry no value). */
async function counterValues(id: string): Promise<number[]> {
  const out: number[] = [];
  for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.source === id && f.value !== null) out.push(f.value as number);
  return out;
}

// ---- tests ---------------------------------------------------------------------------------------
describe("backoffDelay", () => {
  it("defaults to 1 s, 2 s, 4 s ... doubling up to a 60 s cap", () => {
    const delays = Array.from({ length: 10 }, (_, i) => backoffDelay(i + 1, { backoffBaseMs: 1000, backoffMaxMs: 60_000 }));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000]);
    expect(backoffDelay(1000, { backoffBaseMs: 1000, backoffMaxMs: 60_000 })).toBe(60_000);
  });

  it("uses the documented defaults of the manager", () => {
    const m = new DriverManager({ log: null as unknown as EventLog, factories: new Map() }); // settings only, never started
    expect(m.settings).toEqual({ backoffBaseMs: 1000, backoffMaxMs: 60_000, faultAfterCrashes: 5, faultWindowMs: 300_000, watchdogMs: 30_000 });
  });
});

describe("driver manager", () => {
  it("restarts a throwing driver with backoff delays doubling up to the cap, in order", async () => {
    start({ throwing: () => new ThrowingDriver(3) }, { backoffBaseMs: 10, backoffMaxMs: 160, faultAfterCrashes: 100, watchdogMs: 0 }, [["t", "throwing"]]);
    await waitFor(() => liveStates("t").filter((s) => s === "Backoff").length >= 7, "seven backoffs", 30_000);
    const evs = liveOf("t");
    expect(evs.slice(0, 10).map((e) => e.state)).toEqual(["Loading", "Init", "Connected", "Active", "Error", "Backoff", "Connected", "Active", "Error", "Backoff"]);
    const backoffs = evs.filter((e) => e.state === "Backoff");
    expect(backoffs.slice(0, 7).map((e) => e.data.delayMs)).toEqual([10, 20, 40, 80, 160, 160, 160]);
    expect(backoffs.slice(0, 7).map((e) => e.data.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // the restart really waited: the next Connected comes at least delayMs after the Backoff
    for (const b of backoffs.slice(0, 6)) {
      const next = evs.find((e) => e.at > b.at && e.state === "Connected")!;
      expect(next.at - b.at).toBeGreaterThanOrEqual((b.data.delayMs as number) - 1);
    }
    expect(evs.find((e) => e.state === "Error")!.data.error).toBe("Error: device went away");
    expect(mgr!.status()[0]!.restarts).toBeGreaterThanOrEqual(6);
  });

  it("logs each run that reads before it crashes as Active then Backoff with the reason (a flapping device), not its in-between steps", async () => {
    start({ throwing: () => new ThrowingDriver(3) }, { backoffBaseMs: 10, backoffMaxMs: 160, faultAfterCrashes: 100, watchdogMs: 0 }, [["t", "throwing"]]);
    await waitFor(async () => (await states("t")).filter((s) => s === "Backoff").length >= 3, "three logged backoffs", 30_000);
    const evs = (await events("t", "driver.state")).slice(0, 8);
    expect(evs.map((e) => e.data!.state)).toEqual(["Loading", "Init", "Connected", "Active", "Backoff", "Active", "Backoff", "Active"]);
    expect(evs[4]!.data).toMatchObject({ previous: "Active", error: "Error: device went away", attempt: 1, delayMs: 10 });
    expect(evs[5]!.data).toEqual({ state: "Active", previous: "Backoff", attempts: 1 });
  });

  it("detects a hung driver with the watchdog and restarts it", async () => {
    start({ hung: () => new HungDriver() }, { backoffBaseMs: 5, backoffMaxMs: 10, faultAfterCrashes: 100, watchdogMs: 100 }, [["h", "hung"]]);
    await waitFor(() => liveStates("h").filter((s) => s === "Connected").length >= 2, "a restart after the hang", 20_000);
    const evs = liveOf("h");
    expect(evs.map((e) => e.state).slice(0, 5)).toEqual(["Loading", "Init", "Connected", "Error", "Backoff"]);
    expect(evs[3]!.data.error).toContain("hung");
    // not before the watchdog period has passed
    expect(evs[3]!.at - evs[2]!.at).toBeGreaterThanOrEqual(99);
    // the log: the Backoff with the reason, once for the retries that hang the same way
    await waitFor(() => liveStates("h").filter((s) => s === "Backoff").length >= 3, "two more hangs", 20_000);
    expect(await states("h")).toEqual(["Loading", "Init", "Connected", "Backoff"]);
    expect((await events("h", "driver.state"))[3]!.data!.error).toContain("hung");
  });

  it("marks a driver Fault after N crashes within the window and raises an alarm once", async () => {
    start({ throwing: () => new ThrowingDriver(1) }, { backoffBaseMs: 1, backoffMaxMs: 4, faultAfterCrashes: 3, faultWindowMs: 60_000, watchdogMs: 0 }, [["f", "throwing"]]);
    await waitFor(() => mgr!.status()[0]!.state === "Fault", "Fault", 20_000);
    await waitFor(async () => (await events("f", "alarm.raised")).length === 1, "the alarm frame");
    const seq = liveStates("f");
    expect(seq.slice(0, seq.indexOf("Fault") + 1).filter((s) => s === "Error")).toHaveLength(3);
    const alarm = (await events("f", "alarm.raised"))[0]!;
    expect(alarm.data).toMatchObject({ alarm: "driver.fault", driver: "f", severity: "high", reason: "Error: device went away" });
    // still retried, at the longest backoff, and still failing: Fault again, no second alarm
    await waitFor(() => liveStates("f").filter((s) => s === "Error").length >= 5, "retries in Fault", 20_000);
    const faults = liveOf("f").filter((e) => e.state === "Fault");
    expect(faults.length).toBeGreaterThanOrEqual(3);
    expect(faults.every((e) => e.data.retryInMs === 4)).toBe(true);
    // the log: one Fault event (with the reason, the crashes and the retry period), not one per retry
    const logged = (await events("f", "driver.state")).filter((e) => e.data!.state === "Fault");
    expect(logged.map((e) => e.data)).toEqual([{ state: "Fault", previous: "Active", error: "Error: device went away", crashes: 3, retryInMs: 4 }]);
    expect(await events("f", "alarm.raised")).toHaveLength(1);
    expect(await events("f", "alarm.cleared")).toHaveLength(0);
  });

  it("recovers from Fault by itself when the device comes back, and clears the alarm", async () => {
    const shared = { crashesLeft: 4 };
    class ComesBack extends HealthyDriver {
      override async readLoop(tx: FrameSink, signal: AbortSignal) {
        if (shared.crashesLeft-- > 0) throw new Error("device rebooting");
        await super.readLoop(tx, signal);
      }
    }
    start({ back: () => new ComesBack() }, { backoffBaseMs: 1, backoffMaxMs: 20, faultAfterCrashes: 3, faultWindowMs: 60_000, watchdogMs: 0 }, [["b", "back"]]);
    await waitFor(async () => (await events("b", "alarm.cleared")).length === 1, "the alarm cleared", 20_000);
    expect(mgr!.status()[0]!.state).toBe("Active");
    const seq = await states("b");
    expect(seq.filter((s) => s === "Fault")).toHaveLength(1);
    expect(seq.indexOf("Fault")).toBeGreaterThan(0);
    expect(seq.lastIndexOf("Active")).toBeGreaterThan(seq.indexOf("Fault"));
    expect(await events("b", "alarm.raised")).toHaveLength(1);
    await waitFor(async () => (await counterValues("b")).length > 3, "frames after the recovery");
  });

  it("refuses frames from a run that has ended (a hung loop that ignored its abort), counting them", async () => {
    let oldSink: FrameSink | null = null;
    class Zombie extends HealthyDriver {
      override async readLoop(tx: FrameSink) {
        oldSink ??= tx;
        return new Promise<void>(() => undefined); // never sends, never ends: the watchdog restarts it
      }
    }
    const m = start({ zombie: () => new Zombie() }, { backoffBaseMs: 1, backoffMaxMs: 2, watchdogMs: 50 }, [["z", "zombie"]]);
    await waitFor(() => m.status()[0]!.restarts >= 1, "a restart after the hang");
    await oldSink!.send([frameOf("z", 1)]);
    expect(await counterValues("z")).toEqual([]);
    expect(m.status()[0]!.framesRejected).toBe(1);
    await m.remove("z");
    await oldSink!.send([frameOf("z", 2)]);
    expect(await counterValues("z")).toEqual([]);
  });

  it("does not let a hanging init hold up stop()", async () => {
    class SlowInit extends HealthyDriver {
      override init() {
        return new Promise<void>(() => undefined) as unknown as void;
      }
    }
    const m = start({ slow: () => new SlowInit() }, { watchdogMs: 0 }, [["s", "slow"]]);
    await waitFor(() => m.status()[0]!.state === "Init", "Init");
    const t0 = performance.now();
    await m.stop();
    mgr = undefined;
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("refuses a frame the log cannot store (timestamp out of range) alone, without failing the others", async () => {
    class Poisoned extends HealthyDriver {
      override async readLoop(tx: FrameSink, signal: AbortSignal) {
        await tx.send([frameOf("p", 1), { ...frameOf("p", 2), ts: 1e20 * 1e6 }, { ...frameOf("p", 3), ts: Number.NaN }, frameOf("p", 4)]);
        await waitAbort(signal);
      }
    }
    const m = start({ poisoned: () => new Poisoned() }, { watchdogMs: 0 }, [["p", "poisoned"]]);
    await waitFor(async () => (await counterValues("p")).length === 2, "the two good frames");
    expect(await counterValues("p")).toEqual([1, 4]);
    expect(m.status()[0]).toMatchObject({ framesRejected: 2 });
  });

  it("retries a driver that loses its connection until connect succeeds, then it stays Active", async () => {
    const shared = { failures: 3 };
    start({ flaky: () => new FlakyConnectionDriver(shared) }, { backoffBaseMs: 5, backoffMaxMs: 20, faultAfterCrashes: 10, watchdogMs: 0 }, [["c", "flaky"]]);
    await waitFor(async () => (await counterValues("c")).length >= 10, "frames after reconnecting", 20_000);
    expect(liveStates("c")).toEqual(["Loading", "Init", "Error", "Backoff", "Error", "Backoff", "Error", "Backoff", "Connected", "Active"]);
    expect(liveOf("c")[2]!.data.error).toContain("ECONNREFUSED");
    // the log: the first failed connect with its reason, and the recovery after three attempts
    const logged = await events("c", "driver.state");
    expect(logged.map((e) => e.data!.state)).toEqual(["Loading", "Init", "Backoff", "Active"]);
    expect(logged[2]!.data).toMatchObject({ previous: "Init", error: "Error: ECONNREFUSED 127.0.0.1:502", attempt: 1 });
    expect(logged[3]!.data).toEqual({ state: "Active", previous: "Backoff", attempts: 3 });
    expect(mgr!.status()[0]).toMatchObject({ state: "Active", errors: 3, restarts: 3 });
  });

  it("never lets one driver's crash, hang or lost connection affect a healthy one", async () => {
    const healthy = new HealthyDriver(5);
    start(
      {
        healthy: () => healthy,
        throwing: () => new ThrowingDriver(2),
        hung: () => new HungDriver(),
        flaky: () => new FlakyConnectionDriver({ failures: 1000 }),
      },
      { backoffBaseMs: 1, backoffMaxMs: 8, faultAfterCrashes: 1000, watchdogMs: 150 },
      [["ok", "healthy"], ["t", "throwing"], ["h", "hung"], ["c", "flaky"]],
    );
    await waitFor(() => liveStates("h").filter((s) => s === "Error").length >= 3, "three hangs detected", 30_000);
    await waitFor(() => liveStates("t").filter((s) => s === "Error").length >= 10, "ten crashes", 30_000);
    await waitFor(() => liveStates("c").filter((s) => s === "Error").length >= 10, "ten failed connects", 30_000);
    const sent = healthy.n;
    await waitFor(async () => (await counterValues("ok")).length >= sent, "the healthy driver's frames committed");
    const values = await counterValues("ok");
    expect(values.length).toBeGreaterThan(50);
    expect(values).toEqual(Array.from({ length: values.length }, (_, i) => i)); // no gap, no restart
    expect(await states("ok")).toEqual(["Loading", "Init", "Connected", "Active"]);
    expect(mgr!.status().find((s) => s.id === "ok")).toMatchObject({ state: "Active", errors: 0, restarts: 0 });
  });

  it("marks an unknown driver type Fault with the reason", async () => {
    start({ healthy: () => new HealthyDriver() }, { watchdogMs: 0 }, [["x", "no-such-driver"]]);
    await waitFor(() => mgr!.status()[0]!.state === "Fault", "Fault");
    const fault = (await waitFor(async () => (await events("x", "driver.state")).find((e) => e.data!.state === "Fault"), "Fault frame"))!;
    expect(fault.data!.error).toBe("driver 'x': type: unknown driver type 'no-such-driver' (known: healthy)");
    expect(await waitFor(async () => (await events("x", "alarm.raised")).length, "alarm")).toBe(1);
  });

  it("marks a driver with a bad config Fault with the reason, without retrying", async () => {
    class BadConfig extends HealthyDriver {
      override init(): void {
        throw new DriverConfigError("b", "config.intervalMs", "Expected number (got \"fast\")"); // synchronous throw
      }
    }
    start({ bad: () => new BadConfig() }, { backoffBaseMs: 1, watchdogMs: 0 }, [["b", "bad"]]);
    await waitFor(() => mgr!.status()[0]!.state === "Fault", "Fault");
    await waitFor(async () => (await states("b")).includes("Fault"), "Fault frame");
    expect(await states("b")).toEqual(["Loading", "Init", "Fault"]);
    expect(mgr!.status()[0]!.lastError).toBe("driver 'b': config.intervalMs: Expected number (got \"fast\")");
  });

  it("survives exceptions thrown synchronously from connect and shutdown", async () => {
    const shutdownErrors: string[] = [];
    let connects = 0;
    class SyncThrower extends HealthyDriver {
      override connect(): Promise<void> {
        if (connects++ < 2) throw new Error("sync connect failure"); // not a rejected promise: a throw
        return Promise.resolve();
      }
      override shutdown(): Promise<void> {
        throw new Error("sync shutdown failure");
      }
    }
    const m = start({ sync: () => new SyncThrower() }, { backoffBaseMs: 1, backoffMaxMs: 2, faultAfterCrashes: 10, watchdogMs: 0 }, [["s", "sync"]]);
    m.on("shutdownError", (_id: string, e: Error) => shutdownErrors.push(e.message));
    await waitFor(async () => (await counterValues("s")).length >= 5, "frames after the failed connects", 20_000);
    expect(liveStates("s")).toEqual(["Loading", "Init", "Error", "Backoff", "Error", "Backoff", "Connected", "Active"]);
    expect(liveOf("s")[2]!.data.error).toBe("Error: sync connect failure");
    expect(shutdownErrors).toContain("sync shutdown failure");
  });

  it("rejects and counts frames for tags the driver does not own, without logging them", async () => {
    class Stray extends HealthyDriver {
      override async readLoop(tx: FrameSink, signal: AbortSignal) {
        await tx.send([frameOf("r", 1), { ...frameOf("r", 2), tag: "someone/else" }, frameOf("r", 3)]);
        await waitAbort(signal);
      }
    }
    const rejected: [string, string, string][] = [];
    const m = start({ stray: () => new Stray() }, { watchdogMs: 0 }, [["r", "stray"]]);
    m.on("rejected", (...a: [string, string, string]) => rejected.push(a));
    await waitFor(async () => (await counterValues("r")).length === 2, "the two owned frames");
    expect(rejected).toEqual([["r", "someone/else", "unknown_tag"]]);
    expect(m.status()[0]).toMatchObject({ framesSent: 2, framesRejected: 1 });
    for await (const f of log.read({ from: 1 })) expect(f.tag).not.toBe("someone/else");
  });

  it("resolves commit() only once the frames are committed, with their deadband and ownership filters", async () => {
    let committedHead = -1;
    class Acking extends HealthyDriver {
      override async readLoop(tx: FrameSink, signal: AbortSignal) {
        await tx.commit([frameOf("c", 1), { ...frameOf("c", 2), tag: "someone/else" }]);
        committedHead = log.head; // what an MQTT source would PUBACK at this point
        await waitAbort(signal);
      }
    }
    const m = start({ acking: () => new Acking() }, { watchdogMs: 0 }, [["c", "acking"]]);
    await waitFor(() => committedHead >= 0, "commit() to resolve");
    const owned = await counterValues("c");
    expect(owned).toEqual([1]);
    const [f] = await Array.fromAsync(log.read({ from: 1, kinds: ["data"] }));
    expect(f!.offset).toBeLessThanOrEqual(committedHead); // committed before commit() resolved
    expect(m.status()[0]).toMatchObject({ framesSent: 1, framesRejected: 1 });
  });

  it("hands the gateway's data directory to drivers at init", async () => {
    let seen: string | undefined = "unset";
    class Recording extends HealthyDriver {
      override init(i: { id: string; dataDir?: string }) {
        super.init(i);
        seen = i.dataDir;
      }
    }
    mgr = new DriverManager({ log, factories: new Map([["rec", () => new Recording()]]), settings: { watchdogMs: 0 }, dataDir: dir.path });
    mgr.add(entry("d", "rec"), undefined, [variable(tagOf("d"), "d")]);
    await waitFor(() => mgr!.status()[0]!.state === "Active", "Active");
    expect(seen).toBe(dir.path);
  });

  it("stops without waiting for a hung driver's watchdog", async () => {
    const m = start({ hung: () => new HungDriver() }, { watchdogMs: 60_000 }, [["h", "hung"]]);
    await waitFor(() => m.status()[0]!.state === "Connected", "Connected");
    const t0 = performance.now();
    await m.stop();
    mgr = undefined;
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});

describe("quality follows the driver", () => {
  /** The qualities of the Bad frames the manager wrote for a driver's tag, in log order. */
  async function badQualities(id: string): Promise<number[]> {
    const out: number[] = [];
    for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.source === id && f.value === null) out.push(f.quality);
    return out;
  }

  it("marks a crashed driver's tags Bad_CommunicationError once per outage, not at every backoff retry", async () => {
    start({ throwing: () => new ThrowingDriver(0) }, { backoffBaseMs: 5, backoffMaxMs: 10, faultAfterCrashes: 1000, watchdogMs: 0 }, [["t", "throwing"]]);
    await waitFor(() => mgr!.status()[0]!.restarts >= 5, "five restarts");
    expect(await badQualities("t")).toEqual([Quality.Bad_CommunicationError]);
  });

  it("marks the tags again after the driver sent a usable value in between", async () => {
    start({ throwing: () => new ThrowingDriver(1) }, { backoffBaseMs: 5, backoffMaxMs: 10, faultAfterCrashes: 1000, watchdogMs: 0 }, [["t", "throwing"]]);
    await waitFor(() => mgr!.status()[0]!.restarts >= 3, "three restarts");
    // the Bad frame of the third exit is appended while the restart counter moves: wait for it to commit
    let bad: number[] = [];
    await waitFor(async () => (bad = await badQualities("t")).length >= 3, "three Bad markings in the log");
    expect(new Set(bad)).toEqual(new Set([Quality.Bad_CommunicationError]));
  });

  it("marks a hung driver's tags Bad_Timeout when the watchdog fires", async () => {
    start({ hung: () => new HungDriver() }, { backoffBaseMs: 1000, backoffMaxMs: 1000, watchdogMs: 50 }, [["h", "hung"]]);
    await waitFor(() => log.latest().get(tagOf("h"))?.quality === Quality.Bad_Timeout, "the hung driver's tag Bad_Timeout", 2_000);
    expect(mgr!.status()[0]!.lastError).toContain("hung");
  });

  it("marks the tags of a driver that cannot start Bad_ConfigurationError", async () => {
    start({}, { watchdogMs: 0 }, [["x", "no-such-type"]]);
    await waitFor(() => log.latest().get(tagOf("x"))?.quality === Quality.Bad_ConfigurationError, "Bad_ConfigurationError", 2_000);
    expect(mgr!.status()[0]!.state).toBe("Fault");
  });
});

describe("quality across a reload that moves a tag", () => {
  it("does not mark Bad a tag that a reload gave to another, already running driver", async () => {
    const m = start({ healthy: () => new HealthyDriver() }, { watchdogMs: 0 }, [["a", "healthy"]]);
    await waitFor(() => log.latest().get(tagOf("a"))?.source === "a", "a's value");
    // the reload's order: the tag's new owner is started, then its old one removed
    m.add(entry("b", "healthy"), undefined, [variable(tagOf("a"), "b")]);
    await m.remove("a");
    await log.append([]); // whatever the removal appended is committed before this
    const marked: number[] = [];
    for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === tagOf("a") && f.value === null) marked.push(f.quality);
    expect(marked).toEqual([]);
  });
});
