// The Modbus driver on real serial lines (socat pty pairs): RTU against Debian's pymodbus RTU slave and
// against a slave written in the test (which injects silent units and corrupted CRCs), several units
// (several drivers) on one line, RTU over TCP through a socat bridge, and a line that disappears.
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl, type Driver, type Endpoint } from "../../../drivers/index.ts";
import { Quality, Variable, type CmdFrame, type DriverEntry, type Value } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { ptyPair, pymodbusRtuServer, RtuTestSlave, tcpToPty, type PtyPair } from "../../helpers/serial.ts";

setDefaultTimeout(30_000);

let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let mgr: DriverManager;
let pool: EndpointPool;
let pair: PtyPair;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  dir = tempDir();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
  pool = new EndpointPool();
  mgr = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 50, backoffMaxMs: 200, faultAfterCrashes: 1000, watchdogMs: 0 } });
  pair = await ptyPair(dir.path);
});

afterEach(async () => {
  await mgr.stop();
  for (const c of cleanups.splice(0).reverse()) await c();
  await pair.stop();
  await log.close();
  dir.cleanup();
});

const TIMEOUT_MS = 200;
const serialUrl = (path: string) => `serial://${path}?baud=19200&parity=even&stop=1&data=8`;
const endpointOf = (url: string): Endpoint => ({ ...parseEndpointUrl(url), id: "line", timeoutMs: TIMEOUT_MS, pool });
const entry = (id: string, unitId: number, config: Record<string, unknown> = {}): DriverEntry => ({ id, type: "modbus", enabled: true, endpoint: "line", config: { intervalMs: 20, unitId, ...config } });
const holding = (tag: string, driver: string, address: number, access = "R", area = "holding"): Variable =>
  TypeValue.Default(Variable, { tag, driver, type: "uint16", group: "default", access, address: { area, address } }) as Variable;
const latest = (tag: string) => log.latest().get(tag);

function cmd(tag: string, value: Value): CmdFrame {
  const now = Date.now() * 1000;
  return { kind: "cmd", id: crypto.randomUUID(), tag, value, origin: "rest", actor: "test", tenant: "default", ts: now, expiresAt: now + 30e6 };
}

async function qualities(tag: string): Promise<number[]> {
  const out: number[] = [];
  for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === tag) out.push(f.quality);
  return out;
}

/** Two drivers, units 1 and 2, on one serial line; tags u1/r0 and u2/r3 (holding 0 and 3). */
function twoUnits(url: string, extra: Variable[] = []): void {
  mgr.add(entry("u1", 1), endpointOf(url), [holding("u1/r0", "u1", 0), ...extra.filter((t) => t.driver === "u1")]);
  mgr.add(entry("u2", 2), endpointOf(url), [holding("u2/r3", "u2", 3), ...extra.filter((t) => t.driver === "u2")]);
}

/** Waits until `tag` has a new Good frame with `value` after the log's current head. */
async function freshGood(tag: string, value: Value, what: string): Promise<void> {
  const head = log.head;
  await waitFor(() => latest(tag)?.offset! > head && latest(tag)?.quality === Quality.Good && latest(tag)?.value === value, what, 10_000);
}

describe("Modbus RTU on a serial line", () => {
  it("logs the registers, inputs and coils Debian's pymodbus RTU slave serves to two units sharing one line", async () => {
    const server = await pymodbusRtuServer(pair.b, [1, 2]);
    cleanups.push(() => server.stop());
    twoUnits(serialUrl(pair.a), [holding("u1/in5", "u1", 5, "R", "input"), { ...holding("u1/coil1", "u1", 1, "R", "coil"), type: "bool" }]);
    const expected: [string, Value][] = [["u1/r0", 100], ["u1/in5", 105], ["u1/coil1", false], ["u2/r3", 203]];
    for (const [tag, value] of expected) {
      // the slave may miss the very first request while it opens its end
      const f = await waitFor(() => latest(tag)?.quality === Quality.Good && latest(tag), `a Good frame of ${tag}`, 15_000);
      expect({ tag, value: f.value, quality: f.quality }).toEqual({ tag, value, quality: Quality.Good });
    }
    expect(pool.size).toBe(1); // one line, both drivers
  });

  it("writes a setpoint to pymodbus over RTU, reads it back and polls the new value", async () => {
    const server = await pymodbusRtuServer(pair.b, [1]);
    cleanups.push(() => server.stop());
    const sp = holding("u1/sp", "u1", 10, "RW");
    mgr.add(entry("u1", 1), endpointOf(serialUrl(pair.a)), [sp]);
    await waitFor(() => latest("u1/sp")?.value === 110, "the setpoint's initial value", 15_000);
    const driver = mgr.driver("u1")!.driver as Driver;
    expect(await driver.write!(cmd("u1/sp", 4242), sp)).toEqual({ ok: true });
    await freshGood("u1/sp", 4242, "the written value polled back");
  });

  it("gives Bad_Timeout to a silent unit's tags only, while the other unit on the line keeps polling Good, and Good again when it answers", async () => {
    const slave = await RtuTestSlave.open(pair.b, [1, 2]);
    cleanups.push(() => slave.close());
    twoUnits(serialUrl(pair.a));
    await waitFor(() => latest("u1/r0")?.quality === Quality.Good && latest("u2/r3")?.quality === Quality.Good, "both units Good", 15_000);
    slave.behaviour.set(2, "silent");
    await waitFor(() => latest("u2/r3")?.quality === Quality.Bad_Timeout, "unit 2 Bad_Timeout", 10_000);
    slave.registers.get(1)![0] = 7;
    await freshGood("u1/r0", 7, "unit 1 polling on while unit 2 is silent");
    slave.behaviour.set(2, "ok");
    await freshGood("u2/r3", 203, "unit 2 Good again");
    expect((await qualities("u1/r0")).every((q) => q === Quality.Good)).toBe(true);
    expect(mgr.status().map((s) => s.restarts)).toEqual([0, 0]);
  });

  it("gives Bad_CommunicationError to the tags of a unit whose answers fail the CRC, only", async () => {
    const slave = await RtuTestSlave.open(pair.b, [1, 2]);
    cleanups.push(() => slave.close());
    twoUnits(serialUrl(pair.a));
    await waitFor(() => latest("u1/r0")?.quality === Quality.Good && latest("u2/r3")?.quality === Quality.Good, "both units Good", 15_000);
    slave.behaviour.set(2, "corrupt-crc");
    await waitFor(() => latest("u2/r3")?.quality === Quality.Bad_CommunicationError, "unit 2 Bad_CommunicationError", 10_000);
    slave.registers.get(1)![0] = 8;
    await freshGood("u1/r0", 8, "unit 1 polling on");
    expect((await qualities("u1/r0")).every((q) => q === Quality.Good)).toBe(true);
  });

  it("acks an unanswered write timeout_outcome_unknown, sends nothing on the line until the timeout has passed, and refuses that unit's next write unsent while another unit's write goes through", async () => {
    const slave = await RtuTestSlave.open(pair.b, [1, 2]);
    cleanups.push(() => slave.close());
    const sp1 = holding("u1/sp", "u1", 20, "RW");
    const sp2 = holding("u2/sp", "u2", 20, "RW");
    // polls rarely, so that the requests the slave sees are the writes
    mgr.add(entry("u1", 1, { intervalMs: 60_000 }), endpointOf(serialUrl(pair.a)), [sp1]);
    mgr.add(entry("u2", 2, { intervalMs: 60_000 }), endpointOf(serialUrl(pair.a)), [sp2]);
    const d1 = await waitFor(() => mgr.driver("u1")?.state === "Active" && latest("u1/sp") && mgr.driver("u1")!.driver, "u1 active", 15_000);
    const d2 = await waitFor(() => mgr.driver("u2")?.state === "Active" && latest("u2/sp") && mgr.driver("u2")!.driver, "u2 active", 15_000);
    slave.behaviour.set(2, "silent");
    const [lost, other] = await Promise.all([d2.write!(cmd("u2/sp", 5), sp2), Bun.sleep(5).then(() => d1.write!(cmd("u1/sp", 6), sp1))]);
    expect(lost.code).toBe("timeout_outcome_unknown");
    expect(other).toEqual({ ok: true });
    expect(slave.registers.get(1)![20]).toBe(6);
    const writeTo2 = slave.requests.find((r) => r.unit === 2 && r.fc === 6)!;
    const after = slave.requests.filter((r) => r.at > writeTo2.at);
    expect(after.length).toBeGreaterThan(0);
    // half duplex: nothing behind the lost write until its timeout (a queued write would follow within a few ms;
    // arrival times at the slave carry pty delivery jitter of some ms, hence the margin)
    expect(after[0]!.at - writeTo2.at).toBeGreaterThanOrEqual(TIMEOUT_MS / 2);
    const seen = slave.requests.length;
    expect((await d2.write!(cmd("u2/sp", 9), sp2)).code).toBe("device_busy");
    expect(slave.requests.length).toBe(seen); // refused unsent
  });

  it("reopens a line that disappeared (the pty closed) and polls Good again", async () => {
    let slave = await RtuTestSlave.open(pair.b, [1]);
    cleanups.push(() => slave.close());
    mgr.add(entry("u1", 1), endpointOf(serialUrl(pair.a)), [holding("u1/r0", "u1", 0)]);
    await waitFor(() => latest("u1/r0")?.quality === Quality.Good, "unit 1 Good", 15_000);
    slave.close();
    await pair.stop();
    await waitFor(() => latest("u1/r0")?.quality === Quality.Bad_CommunicationError, "Bad_CommunicationError while unplugged", 10_000);
    pair = await ptyPair(dir.path); // plugged back: the same device path
    slave = await RtuTestSlave.open(pair.b, [1]);
    slave.registers.get(1)![0] = 55;
    await freshGood("u1/r0", 55, "Good again after the line came back");
  });
  it("reopens an unplugged line as soon as its device comes back, not after the driver's backoff (60 s in Fault)", async () => {
    // before: a line unplugged for 40 s left the drivers in Fault, and they read again up to 60 s after the replug
    const slow = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 60_000, backoffMaxMs: 60_000, faultAfterCrashes: 1, watchdogMs: 0 } });
    cleanups.push(() => slow.stop());
    let slave = await RtuTestSlave.open(pair.b, [1]);
    cleanups.push(() => slave.close());
    slow.add(entry("u1", 1, { failuresBeforeRestart: 1 }), endpointOf(serialUrl(pair.a)), [holding("u1/r0", "u1", 0)]);
    await waitFor(() => latest("u1/r0")?.quality === Quality.Good, "unit 1 Good", 15_000);
    slave.close();
    await pair.stop();
    await waitFor(() => slow.status()[0]?.state === "Fault", "the driver in Fault (its retry 60 s away)", 10_000);
    pair = await ptyPair(dir.path); // plugged back: the device path is created again
    slave = await RtuTestSlave.open(pair.b, [1]);
    slave.registers.get(1)![0] = 77;
    const replugged = performance.now();
    await freshGood("u1/r0", 77, "Good again soon after the replug");
    expect(performance.now() - replugged).toBeLessThan(10_000);
  });

  it("never sends to unit 0 (the broadcast address) on a line: the driver refuses it at connect, naming why", async () => {
    const slave = await RtuTestSlave.open(pair.b, [1]);
    cleanups.push(() => slave.close());
    mgr.add(entry("all", 0), endpointOf(serialUrl(pair.a)), [holding("all/r0", "all", 0)]);
    await waitFor(() => (mgr.status()[0]?.lastError ?? "").includes("broadcast address"), "the refusal in the driver's state", 10_000);
    expect(slave.requests).toEqual([]);
  });

  it("tells every driver on an unplugged line why it cannot open (no such device), not only the driver whose attempt failed", async () => {
    const slave = await RtuTestSlave.open(pair.b, [1, 2]);
    cleanups.push(() => slave.close());
    twoUnits(serialUrl(pair.a));
    await waitFor(() => latest("u1/r0")?.quality === Quality.Good && latest("u2/r3")?.quality === Quality.Good, "both units Good", 15_000);
    await pair.stop(); // the adapter unplugged: the device path is gone
    const errorOf = (id: string) => mgr.status().find((d) => d.id === id)?.lastError ?? "";
    // each driver has failed its connection several times: every one of them names the missing device
    await waitFor(() => ["u1", "u2"].every((id) => errorOf(id).includes("no such device")), "both drivers name the missing device", 10_000);
    for (const id of ["u1", "u2"]) expect(errorOf(id).split(pair.a).length - 1).toBe(1); // the path once, not three times
    // no countdown of the line's own reopen: read later (in Fault, a minute on) it would be stale
    for (const id of ["u1", "u2"]) expect(errorOf(id)).not.toContain("next attempt in");
  });
});

describe("Modbus RTU over TCP", () => {
  it("polls pymodbus through a socat TCP bridge to the pty, as through a serial device server", async () => {
    // one unit: several units sharing a line are proven on the serial line above; behind socat, pymodbus 3.0
    // sometimes stops answering a second unit id (a framer quirk of that server, seen in about one full run in ten)
    const server = await pymodbusRtuServer(pair.b, [1]);
    const bridge = await tcpToPty(pair.a);
    cleanups.push(() => server.stop(), () => bridge.stop());
    mgr.add(entry("u1", 1), endpointOf(`rtu+tcp://127.0.0.1:${bridge.port}`), [holding("u1/r0", "u1", 0)]);
    for (const [tag, value] of [["u1/r0", 100]] as const) {
      const f = await waitFor(() => latest(tag)?.quality === Quality.Good && latest(tag), `a Good frame of ${tag}`, 15_000);
      expect({ tag, value: f.value, quality: f.quality }).toEqual({ tag, value, quality: Quality.Good });
    }
  });
});
