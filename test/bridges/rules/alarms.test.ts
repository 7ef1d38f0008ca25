// The alarm engine on a real event log: limit alarms with hysteresis and delays, bool and quality alarms,
// request alarms from the mapping layer and from rules, operators' acks and shelving with expiry, and a
// restart that keeps every state and repeats no transition.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Registry } from "prom-client";
import { AlarmEngine, AlarmNotFound } from "../../../bridges/rules/alarms.ts";
import { Catalog, GatewayEvent, Quality, type AlarmState, type EventFrame, type Frame, type Variable } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { Retention } from "../../../storage/retention.ts";
import { failLogReads } from "../../helpers/faults.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";

const tag = (t: string, alarms: Variable["alarms"], type: Variable["type"] = "float64"): Variable =>
  ({ tag: t, driver: "sim", type, group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default", alarms }) as Variable;
const limits = (extra: Partial<NonNullable<Variable["alarms"]>> = {}) => ({ deadband: 0, onDelayMs: 0, offDelayMs: 0, ...extra });

let dir: ReturnType<typeof tempDir>;
let path: string;
let log: EventLog;
let engines: AlarmEngine[] = [];
beforeEach(async () => {
  dir = tempDir();
  path = join(dir.path, "log.duckdb");
  log = await EventLog.open({ path, maxDelayMs: 1 });
});
afterEach(async () => {
  for (const e of engines) await e.stop();
  engines = [];
  await log.close();
  dir.cleanup();
});

async function engine(tags: Variable[], registry?: Registry, catalog = new Catalog(tags), archiveDir?: string): Promise<AlarmEngine> {
  const e = new AlarmEngine({ log, catalog, storeEveryMs: 20, retry: { initialMs: 10, maxMs: 50 }, ...(registry ? { registry } : {}), ...(archiveDir ? { archiveDir } : {}) });
  await e.start();
  engines.push(e);
  return e;
}
const stopEngine = async (e: AlarmEngine) => {
  await e.stop();
  engines = engines.filter((x) => x !== e);
};

const data = (t: string, value: number | boolean, quality: number = Quality.Good): Frame => ({ kind: "data", tag: t, value, ts: Date.now() * 1000, quality, source: "sim" });
const put = (...frames: Frame[]) => log.append(frames);
/** Every transition event in the log, in order. */
async function transitions(): Promise<{ type: string; data: AlarmState }[]> {
  const out: { type: string; data: AlarmState }[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) {
    const e = f as EventFrame;
    if (e.source === "alarms") out.push({ type: e.type, data: e.data as AlarmState });
  }
  return out;
}
const typesOf = async (id: string) => (await transitions()).filter((t) => t.data.id === id).map((t) => t.type);
/** Waits until the log holds exactly these transitions of `id` (the table changes before its event commits). */
const logged = (id: string, types: string[]) => waitFor(async () => JSON.stringify(await typesOf(id)) === JSON.stringify(types), `${types.join(", ")} of ${id} in the log`, 3000, 5);
/** The gateway's own start or stop event (schemas/alarms.ts GatewayEvent). */
const lifecycle = (type: string): Frame => ({ kind: "event", type, source: "gateway", ts: Date.now() * 1000, data: {} });
/** The commit time of the frame at `offset`. */
const loggedAt = async (offset: number) => (await log.read({ from: offset, to: offset }).next()).value!.loggedAt;
const caughtUp = (e: AlarmEngine) => waitFor(() => e.status().position === log.head, "the engine to catch up");

describe("alarm engine", () => {
  it("raises a limit alarm, records the actor of the acknowledgement, and clears it", async () => {
    const e = await engine([tag("b/t", limits({ H: { limit: 90 }, HH: { limit: 95, priority: "critical" } }))]);
    await put(data("b/t", 80), data("b/t", 92));
    await waitFor(() => e.get("b/t:H")?.active, "H active");
    expect(e.get("b/t:HH")).toBeUndefined();
    expect(e.list().map((a) => [a.id, a.priority, a.active, a.acked])).toEqual([["b/t:H", "medium", true, false]]);
    const acked = await e.ack("b/t:H", "alice");
    expect({ acked: acked.acked, actor: acked.actor }).toEqual({ acked: true, actor: "alice" });
    await put(data("b/t", 85));
    await logged("b/t:H", ["alarm.active", "alarm.acked", "alarm.cleared"]);
    const ack = (await transitions()).find((t) => t.type === "alarm.acked")!;
    expect(ack.data.actor).toBe("alice");
    // cleared and acknowledged: no longer annunciated
    expect(e.list()).toEqual([]);
    await expect(e.ack("nope", "alice")).rejects.toBeInstanceOf(AlarmNotFound);
  });

  it("does not flap with a value oscillating across the limit inside the deadband", async () => {
    const e = await engine([tag("b/t", limits({ H: { limit: 90 }, deadband: 2 }))]);
    const wave = Array.from({ length: 40 }, (_, i) => data("b/t", i % 2 ? 90.6 : 89.4));
    await put(...wave);
    await caughtUp(e);
    expect(await typesOf("b/t:H")).toEqual(["alarm.active"]);
    await put(data("b/t", 87.9));
    await logged("b/t:H", ["alarm.active", "alarm.cleared"]);
  });

  it("without a deadband the same oscillation makes a transition per crossing (the test's control)", async () => {
    const e = await engine([tag("b/t", limits({ H: { limit: 90 } }))]);
    await put(...Array.from({ length: 10 }, (_, i) => data("b/t", i % 2 ? 90.6 : 89.4)));
    await caughtUp(e);
    // 89.4 first: nine crossings
    expect((await typesOf("b/t:H")).length).toBe(9);
  });

  it("raises only after the on-delay and clears only after the off-delay, with no further reading needed", async () => {
    // delays of 1 s: a 100 ms excursion keeps 900 ms of margin when a busy machine commits its end late
    const e = await engine([tag("b/t", limits({ H: { limit: 90 }, onDelayMs: 1000, offDelayMs: 1000 }))]);
    // a short excursion, shorter than the on-delay: nothing
    await put(data("b/t", 95));
    await Bun.sleep(100);
    await put(data("b/t", 80));
    await caughtUp(e);
    await Bun.sleep(1050);
    expect(await typesOf("b/t:H")).toEqual([]);
    const t0 = performance.now();
    await put(data("b/t", 95));
    await waitFor(() => e.get("b/t:H")?.active, "active after the on-delay", 5000, 5);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(990);
    const t1 = performance.now();
    await put(data("b/t", 80));
    await waitFor(() => e.get("b/t:H")?.active === false, "cleared after the off-delay", 5000, 5);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(990);
    await logged("b/t:H", ["alarm.active", "alarm.cleared"]);
  }, 20_000);

  it("raises a quality alarm when the tag has been Bad for badForMs, not before", async () => {
    const e = await engine([tag("b/t", limits({ quality: { badForMs: 300, priority: "low" } }))]);
    const { first } = await put(data("b/t", 1, Quality.Bad_CommunicationError));
    // no sleep to race against: when it was raised is read from the log, however late the machine runs
    await waitFor(() => e.get("b/t:quality")?.active, "quality alarm", 3000, 5);
    expect(e.get("b/t:quality")!.priority).toBe("low");
    await logged("b/t:quality", ["alarm.active"]);
    const badAt = (await log.read({ from: first, to: first }).next()).value!.loggedAt;
    let raised: { loggedAt: number; since: number } | undefined;
    for await (const f of log.read({ from: first + 1, kinds: ["event"] })) if (f.kind === "event" && f.type === "alarm.active") raised = { loggedAt: f.loggedAt, since: (f.data as AlarmState).since };
    expect(raised!.since).toBe(badAt + 300_000);
    expect(raised!.loggedAt).toBeGreaterThanOrEqual(badAt + 300_000);
    await put(data("b/t", 1));
    await waitFor(() => e.get("b/t:quality")?.active === false, "cleared by a Good reading");
  });

  it("raises no quality alarm for a tag out of service (its driver paused or removed by an operator), and clears one active when it goes out of service", async () => {
    const e = await engine([tag("o/a", limits({ quality: { badForMs: 300 } })), tag("o/b", limits({ quality: { badForMs: 300 } }))]);
    // o/b is the control: Bad for a real reason at the same moment as o/a is taken out of service
    await put(data("o/a", 0, Quality.Bad_OutOfService), data("o/b", 0, Quality.Bad_CommunicationError));
    await waitFor(() => e.get("o/b:quality")?.active, "o/b's quality alarm", 3000, 5);
    await put(data("o/a", 0, Quality.Bad_OutOfService)); // read again after the delay: still nothing
    await caughtUp(e);
    expect(e.get("o/a:quality")).toBeUndefined();
    // an operator pauses o/b's driver: out of service, no longer a fault to annunciate
    await put(data("o/b", 0, Quality.Bad_OutOfService));
    await waitFor(() => e.get("o/b:quality")?.active === false, "o/b's alarm cleared when out of service");
    expect(await typesOf("o/a:quality")).toEqual([]);
  });

  it("counts no Bad time between gateway.stopping and gateway.started: a tag still Bad raises badForMs after the start", async () => {
    const e = await engine([tag("p/a", limits({ quality: { badForMs: 300 } })), tag("p/b", limits({ quality: { badForMs: 300 } }))]);
    await put(lifecycle(GatewayEvent.Stopping), data("p/a", 0, Quality.Bad_NoCommunication), data("p/b", 0, Quality.Bad_NoCommunication));
    // the gateway stays down longer than badForMs
    await Bun.sleep(400);
    const { first: started } = await put(lifecycle(GatewayEvent.Started), data("p/a", 1));
    await waitFor(() => e.get("p/b:quality")?.active, "p/b's quality alarm", 3000, 5);
    await caughtUp(e);
    const startedAt = (await log.read({ from: started, to: started }).next()).value!.loggedAt;
    expect(e.get("p/b:quality")!.since).toBe(startedAt + 300_000);
    expect(e.get("p/a:quality")).toBeUndefined();
  });

  it("goes on after gateway.started with the Bad time a tag had before gateway.stopping, also when the engine restarts in between", async () => {
    const e = await engine([tag("p/a", limits({ quality: { badForMs: 600 } }))]);
    const { first: bad } = await put(data("p/a", 0, Quality.Bad_CommunicationError));
    await Bun.sleep(250);
    const { first: stopping } = await put(lifecycle(GatewayEvent.Stopping), data("p/a", 0, Quality.Bad_NoCommunication));
    await caughtUp(e);
    await stopEngine(e);
    // down longer than badForMs: neither the stop nor the restart fires it
    await Bun.sleep(700);
    const e2 = await engine([tag("p/a", limits({ quality: { badForMs: 600 } }))]);
    const { first: started } = await put(lifecycle(GatewayEvent.Started));
    await caughtUp(e2);
    expect(e2.get("p/a:quality")).toBeUndefined();
    await waitFor(() => e2.get("p/a:quality")?.active, "p/a's quality alarm", 3000, 5);
    const left = (await loggedAt(bad)) + 600_000 - (await loggedAt(stopping));
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(600_000 - 200_000);
    expect(e2.get("p/a:quality")!.since).toBe((await loggedAt(started)) + left);
  });

  it("after a crash (gateway.starting with no gateway.stopping) goes on with the Bad time a tag had at the last frame logged, not counting the downtime", async () => {
    const e = await engine([tag("p/a", limits({ quality: { badForMs: 600 } }))]);
    const { first: bad } = await put(data("p/a", 0, Quality.Bad_CommunicationError));
    await Bun.sleep(250);
    // the last frame before the process dies: no gateway.stopping follows
    const { first: last } = await put(data("p/b", 1));
    await caughtUp(e);
    await stopEngine(e);
    // down longer than badForMs; the restarted gateway's first commit, then its engine replays the log
    await Bun.sleep(700);
    await put(lifecycle(GatewayEvent.Starting));
    const e2 = await engine([tag("p/a", limits({ quality: { badForMs: 600 } }))]);
    await caughtUp(e2);
    // starting up (drivers, bridges) takes longer than the time the delay had left: still nothing
    await Bun.sleep(500);
    expect(e2.get("p/a:quality")).toBeUndefined();
    const { first: start } = await put(lifecycle(GatewayEvent.Started));
    await waitFor(() => e2.get("p/a:quality")?.active, "p/a's quality alarm", 3000, 5);
    const left = (await loggedAt(bad)) + 600_000 - (await loggedAt(last));
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(600_000 - 200_000);
    expect(e2.get("p/a:quality")!.since).toBe((await loggedAt(start)) + left);
  });

  it("raises a bool alarm on its `when` value and ignores Bad readings for it", async () => {
    const e = await engine([tag("m/trip", limits({ bool: { when: true, priority: "critical" } }), "bool")]);
    await put(data("m/trip", false), data("m/trip", true, Quality.Bad_Timeout));
    await caughtUp(e);
    expect(e.get("m/trip:bool")).toBeUndefined();
    await put(data("m/trip", true));
    await waitFor(() => e.get("m/trip:bool")?.active, "bool alarm");
  });

  it("raises mapping:<tag> on a mapping.error event and clears it on mapping.recovered", async () => {
    const e = await engine([]);
    await put({ kind: "event", type: "mapping.error", source: "mapping", tag: "b/flow", ts: Date.now() * 1000, data: { error: "division by zero" } });
    await waitFor(() => e.get("mapping:b/flow")?.active, "mapping alarm");
    expect(e.get("mapping:b/flow")).toMatchObject({ kind: "mapping", tag: "b/flow", message: "mapping of b/flow failed: division by zero" });
    await put({ kind: "event", type: "mapping.recovered", source: "mapping", tag: "b/flow", ts: Date.now() * 1000 });
    await waitFor(() => e.get("mapping:b/flow")?.active === false, "mapping alarm cleared");
  });

  it("raises rule:<name>:<n> on alarm.raise from a rule, with its priority and message", async () => {
    const e = await engine([]);
    await put({ kind: "event", type: "alarm.raise", source: "rule:pump", ts: Date.now() * 1000, data: { name: "dry-run", priority: "critical", message: "pump runs dry" } });
    await waitFor(() => e.get("rule:pump:dry-run")?.active, "rule alarm");
    expect(e.get("rule:pump:dry-run")).toMatchObject({ kind: "rule", priority: "critical", message: "pump runs dry", acked: false });
    await put({ kind: "event", type: "alarm.clear", source: "rule:pump", ts: Date.now() * 1000, data: { name: "dry-run" } });
    await waitFor(() => e.get("rule:pump:dry-run")?.active === false, "rule alarm cleared");
    // a raise whose source is not a rule, or without a name, is ignored
    await put({ kind: "event", type: "alarm.raise", source: "someone", ts: Date.now() * 1000, data: { name: "x" } }, { kind: "event", type: "alarm.raise", source: "rule:pump", ts: Date.now() * 1000, data: {} });
    await caughtUp(e);
    expect(e.list({ state: "all" }).map((a) => a.id)).toEqual(["rule:pump:dry-run"]);
  });

  it("hides a shelved alarm until its shelving expires, then unshelves it with an event", async () => {
    const registry = new Registry();
    const e = await engine([tag("b/t", limits({ H: { limit: 90, priority: "high" } }))], registry);
    await put(data("b/t", 95));
    await waitFor(() => e.get("b/t:H")?.active, "H active");
    expect((await registry.getSingleMetricAsString("edge_alarms_active")).includes('edge_alarms_active{priority="high"} 1')).toBe(true);
    const shelved = await e.shelve("b/t:H", "bob", 300, "sensor being replaced");
    expect(shelved).toMatchObject({ actor: "bob", reason: "sensor being replaced" });
    expect(e.list()).toEqual([]);
    expect(e.list({ state: "shelved" }).map((a) => a.id)).toEqual(["b/t:H"]);
    expect((await registry.getSingleMetricAsString("edge_alarms_active")).includes('edge_alarms_active{priority="high"} 0')).toBe(true);
    await logged("b/t:H", ["alarm.active", "alarm.shelved", "alarm.unshelved"]);
    expect(e.list().map((a) => a.id)).toEqual(["b/t:H"]);
    const last = (await transitions()).at(-1)!;
    expect({ type: last.type, reason: last.data.reason }).toEqual({ type: "alarm.unshelved", reason: "expired" });
  });

  it("keeps the active and acknowledged states across a restart and repeats no transition", async () => {
    const tags = [tag("b/t", limits({ H: { limit: 90 } })), tag("b/p", limits({ L: { limit: 2 } }))];
    let e = await engine(tags);
    await put(data("b/t", 95), data("b/p", 1));
    await waitFor(() => e.get("b/t:H")?.active && e.get("b/p:L")?.active, "two alarms");
    await e.ack("b/t:H", "alice");
    await put(data("b/p", 3), data("b/t", 96));
    await waitFor(() => e.get("b/p:L")?.active === false, "L cleared");
    await caughtUp(e);
    const before = await transitions();
    await stopEngine(e);
    await log.close();
    log = await EventLog.open({ path, maxDelayMs: 1 });
    e = await engine(tags);
    expect(e.get("b/t:H")).toMatchObject({ active: true, acked: true, actor: "alice" });
    expect(e.get("b/p:L")).toMatchObject({ active: false, acked: false });
    await put(data("b/t", 97), data("b/p", 4));
    await caughtUp(e);
    expect(await transitions()).toEqual(before);
  });

  it("keeps an alarm's state across a restart after retention moved its transitions to the Parquet archive", async () => {
    const archiveDir = join(dir.path, "archive");
    const tags = [tag("b/t", limits({ H: { limit: 90 } }))];
    let e = await engine(tags, undefined, undefined, archiveDir);
    await put(data("b/t", 95));
    await waitFor(() => e.get("b/t:H")?.active, "H active");
    const raisedAt = e.get("b/t:H")!.activeSince;
    await e.ack("b/t:H", "alice");
    await put(...Array.from({ length: 50 }, () => data("other", 1)));
    await caughtUp(e);
    await stopEngine(e);
    // a short retention: only the last 10 frames stay in the hot table, the transitions are archived
    const run = await new Retention(log, archiveDir, { maxAgeHours: 0, maxFrames: 10, archive: true, chunkFrames: 1000 }).run();
    expect(run.frames).toBeGreaterThan(40);
    await log.close();
    log = await EventLog.open({ path, maxDelayMs: 1 });
    expect(await transitions()).toEqual([]);
    e = await engine(tags, undefined, undefined, archiveDir);
    expect(e.get("b/t:H")).toMatchObject({ active: true, acked: true, actor: "alice", activeSince: raisedAt });
    // the restarted engine goes on from that state: the next reading clears it, nothing is raised again
    await put(data("b/t", 80));
    await waitFor(() => e.get("b/t:H")?.active === false, "H cleared");
    await caughtUp(e);
    expect((await transitions()).map((t) => t.type)).toEqual(["alarm.cleared"]);
  });

  it("fills activeSince from the last activation for transitions logged before the field existed", async () => {
    const old = { id: "b/t:H", tag: "b/t", kind: "H", priority: "medium", message: "b/t above H limit 90", value: 95, cause: 1 };
    const ev = (type: string, data: object): Frame => ({ kind: "event", type, source: "alarms", tag: "b/t", ts: 1, data: { ...data } });
    await put(
      ev("alarm.active", { ...old, active: true, acked: false, since: 1_000 }),
      ev("alarm.acked", { ...old, active: true, acked: true, actor: "alice", since: 2_000 }),
      ev("alarm.cleared", { ...old, active: false, acked: true, actor: "alice", since: 3_000 }),
    );
    const e = await engine([tag("b/t", limits({ H: { limit: 90 } }))]);
    expect(e.get("b/t:H")).toMatchObject({ active: false, acked: true, since: 3_000, activeSince: 1_000 });
  });

  it("a delay pending at a restart takes effect once after it, at its time, and frames read again repeat nothing", async () => {
    const tags = [tag("b/t", limits({ H: { limit: 90 }, onDelayMs: 400 })), tag("b/p", limits({ L: { limit: 2 } }))];
    let e = await engine(tags);
    const t0 = performance.now();
    await put(data("b/t", 80), data("b/t", 95));
    // another alarm comes and goes while the delay runs: read again after the restart
    await put(data("b/p", 1));
    await put(data("b/p", 3));
    await logged("b/p:L", ["alarm.active", "alarm.cleared"]);
    await caughtUp(e);
    await Bun.sleep(50);
    await stopEngine(e);
    // the cursor stays before the reading that started the delay
    expect(log.cursor("alarms")).toBeLessThan(log.head);
    e = await engine(tags);
    await waitFor(() => e.get("b/t:H")?.active, "active after the delay", 3000, 5);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(390);
    await put(data("b/t", 96));
    await caughtUp(e);
    await stopEngine(e);
    e = await engine(tags);
    await caughtUp(e);
    expect(await typesOf("b/t:H")).toEqual(["alarm.active"]);
    expect(await typesOf("b/p:L")).toEqual(["alarm.active", "alarm.cleared"]);
  });

  it("goes on after failed log reads and a failed commit of its transitions, repeating none", async () => {
    const e = await engine([tag("b/t", limits({ H: { limit: 90 } }))]);
    const reads = failLogReads(log, 3);
    // the first append carrying a transition fails, as a commit would
    const append = log.append.bind(log);
    let failed = 0;
    log.append = (frames, opts) => (failed === 0 && frames.some((f) => f.kind === "event" && f.source === "alarms") ? (failed++, Promise.reject(new Error("injected commit failure"))) : append(frames, opts));
    await put(data("b/t", 95));
    await logged("b/t:H", ["alarm.active"]);
    expect({ reads: reads.thrown, failed }).toEqual({ reads: 3, failed: 1 });
    await put(data("b/t", 80));
    await logged("b/t:H", ["alarm.active", "alarm.cleared"]);
    await waitFor(() => e.status().state === "ok", "the engine ok again");
    log.append = append;
  });

  it("takes a catalog reload without re-announcing or forgetting an alarm, and evaluates the new limits", async () => {
    const catalog = new Catalog([tag("b/t", limits({ H: { limit: 90 } }))]);
    const e = await engine([], undefined, catalog);
    await put(data("b/t", 95), data("b/p", 1));
    await logged("b/t:H", ["alarm.active"]);
    expect(e.known("b/p:L")).toBeUndefined();
    catalog.replace([tag("b/t", limits({ H: { limit: 90 }, HH: { limit: 99 } })), tag("b/p", limits({ L: { limit: 2 } }))]);
    await put(data("b/t", 96), data("b/p", 1.5));
    await logged("b/p:L", ["alarm.active"]);
    await put(data("b/t", 100));
    await logged("b/t:HH", ["alarm.active"]);
    expect(await typesOf("b/t:H")).toEqual(["alarm.active"]);
  });

  it("raises no quality alarm for a tag that went Good after a catalog reload during its delay", async () => {
    const quality = () => tag("p/a", limits({ quality: { badForMs: 300 } }));
    const catalog = new Catalog([quality()]);
    const e = await engine([], undefined, catalog);
    await put(data("p/a", 0, Quality.Bad_CommunicationError));
    await caughtUp(e);
    catalog.replace([quality()]); // the same alarm: its delay is carried over to the new condition
    await put(data("p/a", 1));
    await caughtUp(e);
    await Bun.sleep(500); // past the delay: a delay left on the replaced condition would fire now
    await put(data("p/a", 2));
    await caughtUp(e);
    expect(e.get("p/a:quality")).toBeUndefined();
    await waitFor(() => log.cursor("alarms") === log.head, "the cursor stored up to the head (no delay holds it back)");
  });
});
