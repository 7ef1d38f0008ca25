// A planned stop is not a device fault: a real gateway process stopped with SIGTERM (its drivers mark
// every tag Bad on the way down) and started again after longer than the tags' quality-alarm badForMs
// raises no quality alarm, while a device that is really down after the restart raises its alarm once,
// badForMs after the gateway has started (the time it was stopped or starting does not count), or the
// rest of badForMs when the tag was Bad already before the stop (that Bad time counts).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { GatewayEvent, isBad, type AlarmState, type DataFrame, type EventFrame, type Logged } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { spawnGateway, type GatewayProcess } from "../helpers/gateway-process.ts";
import { freePort, tempDir, waitFor, writeConfig } from "../helpers/index.ts";
import { ModbusDevice } from "../helpers/modbus-device.ts";

// generous: a loaded machine may take a while after `gateway.started` to read the device again
const BAD_FOR_MS = 2000;
const TAGS = ["plc/a", "plc/b", "plc/c"];
let dir: ReturnType<typeof tempDir>;
let device: ModbusDevice;
let configDir: string;
let running: GatewayProcess | null = null;

beforeAll(async () => {
  dir = tempDir("edge-planned-stop-");
  device = new ModbusDevice(await freePort());
  await device.start();
  configDir = writeConfig(join(dir.path, "config"), {
    "gateway.yml": `dataDir: ${join(dir.path, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: false }\nmodbusSlave: { enabled: false }\ndemo: { enabled: false }\nwatchConfig: false\n`,
    "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:${device.port}", timeoutMs: 300 }\n`,
    "drivers.yml": "drivers:\n  - id: plc\n    type: modbus\n    endpoint: plc\n    config: { intervalMs: 100 }\n",
    "variables.yml":
      "tags:\n" +
      TAGS.map((t, i) => `  - { tag: ${t}, driver: plc, type: uint16, address: { area: holding, address: ${i} }, alarms: { quality: { badForMs: ${BAD_FOR_MS}, priority: high } } }\n`).join(""),
  });
});
afterAll(async () => {
  await running?.stop("SIGKILL");
  await device?.kill();
  dir?.cleanup();
});

type ApiTag = { tag: string; quality: string };
const tagsOf = async (g: GatewayProcess) => (await (await fetch(`${g.url}/api/tags`)).json()) as ApiTag[];
type Ready = { components: { consumers: { consumers: { name: string; position: number; head: number }[] }; services: Record<string, { active?: Record<string, number> }> } };
const readyz = async (g: GatewayProcess) => (await (await fetch(`${g.url}/readyz`)).json()) as Ready;
/** The alarm engine has evaluated every frame committed when this was asked. */
async function engineCaughtUp(g: GatewayProcess): Promise<void> {
  const alarms = async () => (await readyz(g)).components.consumers.consumers.find((c) => c.name === "alarms")!;
  const head = (await alarms()).head;
  await waitFor(async () => (await alarms()).position >= head, "the alarm engine caught up", 10_000);
}

async function start(): Promise<GatewayProcess> {
  running = await spawnGateway(configDir);
  return running;
}
async function stop(signal: "SIGTERM" | "SIGKILL"): Promise<number | null> {
  const code = await running!.stop(signal);
  running = null;
  return code;
}

/** The log as the stopped gateway left it: its alarm transitions, its lifecycle events and the tags' frames. */
async function readLog(): Promise<{ transitions: Logged<EventFrame>[]; lifecycle: Logged<EventFrame>[]; data: Logged<DataFrame>[]; all: { offset: number; loggedAt: number }[] }> {
  const log = await EventLog.open({ path: join(dir.path, "data", "log.duckdb"), tailFrames: 0 });
  const transitions: Logged<EventFrame>[] = [];
  const lifecycle: Logged<EventFrame>[] = [];
  const data: Logged<DataFrame>[] = [];
  const all: { offset: number; loggedAt: number }[] = [];
  try {
    for await (const f of log.read({ from: 1 })) {
      all.push({ offset: f.offset, loggedAt: f.loggedAt });
      if (f.kind === "data") data.push(f);
      if (f.kind !== "event") continue;
      if (f.source === "alarms") transitions.push(f);
      if (f.source === "gateway" && f.type.startsWith("gateway.")) lifecycle.push(f);
    }
  } finally {
    await log.close();
  }
  return { transitions, lifecycle, data, all };
}

describe("quality alarms across a planned stop", () => {
  it("raises no quality alarm after a SIGTERM restart that lasted longer than badForMs", async () => {
    let g = await start();
    await waitFor(async () => (await tagsOf(g)).every((t) => t.quality === "Good"), "every tag Good", 20_000);
    expect(await stop("SIGTERM")).toBe(0);
    // the gateway stays down past the tags' badForMs (its drivers marked them Bad on the way down)
    await Bun.sleep(BAD_FOR_MS + 500);
    g = await start();
    await waitFor(async () => (await tagsOf(g)).every((t) => t.quality === "Good"), "every tag Good again", 20_000);
    await engineCaughtUp(g);
    expect(await stop("SIGTERM")).toBe(0);

    const { transitions, lifecycle } = await readLog();
    expect(transitions.map((t) => (t.data as AlarmState).id)).toEqual([]);
    expect(lifecycle.map((e) => [e.type, e.data?.reason ?? null])).toEqual([
      [GatewayEvent.Starting, null],
      [GatewayEvent.Started, null],
      [GatewayEvent.Stopping, "SIGTERM"],
      [GatewayEvent.Starting, null],
      [GatewayEvent.Started, null],
      [GatewayEvent.Stopping, "SIGTERM"],
    ]);
    // the gateway was down longer than badForMs
    expect(lifecycle[3]!.loggedAt - lifecycle[2]!.loggedAt).toBeGreaterThan(BAD_FOR_MS * 1000);
  }, 90_000);

  it("raises one quality alarm per tag, badForMs after the start, when the device is down after the restart", async () => {
    device.signal("SIGKILL");
    const g = await start();
    await waitFor(async () => (await readyz(g)).components.services.alarms?.active?.high === TAGS.length, "a quality alarm per tag", 15_000);
    expect(await stop("SIGTERM")).toBe(0);

    const { transitions, lifecycle } = await readLog();
    const started = lifecycle.filter((e) => e.type === GatewayEvent.Started).at(-1)!;
    const raised = transitions.filter((t) => t.type === "alarm.active");
    expect(raised.map((t) => (t.data as AlarmState).id).sort()).toEqual(TAGS.map((t) => `${t}:quality`));
    for (const t of raised) {
      // committed no earlier than badForMs after the gateway had started, and dated then
      expect(t.loggedAt).toBeGreaterThanOrEqual(started.loggedAt + BAD_FOR_MS * 1000);
      expect((t.data as AlarmState).since).toBe(started.loggedAt + BAD_FOR_MS * 1000);
    }
    expect(transitions.filter((t) => t.type !== "alarm.active")).toEqual([]);
  }, 60_000);

  /**
   * The device dies, its tags are Bad for a tenth of badForMs (the rest is slack for a slow stop), then the
   * gateway goes down by `signal` for longer than badForMs, the device still dead, and starts again: every
   * tag's quality alarm is raised the rest of its badForMs after the start. What stopped the clock: the
   * `gateway.stopping` of a planned stop, or the last frame logged before a crash.
   */
  async function downWhileBad(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    await device.kill(); // the previous test left it dead (run alone: alive)
    await device.start();
    let g = await start();
    await waitFor(async () => (await tagsOf(g)).every((t) => t.quality === "Good"), "every tag Good", 20_000);
    await waitFor(async () => !(await readyz(g)).components.services.alarms?.active?.high, "the previous test's alarms cleared", 15_000);
    device.signal("SIGKILL");
    await waitFor(async () => (await tagsOf(g)).every((t) => t.quality !== "Good"), "every tag Bad", 10_000);
    await Bun.sleep(BAD_FOR_MS / 10);
    const code = await stop(signal);
    if (signal === "SIGTERM") expect(code).toBe(0);
    else expect(code).not.toBe(0);
    await Bun.sleep(BAD_FOR_MS + 500);
    g = await start();
    await waitFor(async () => (await readyz(g)).components.services.alarms?.active?.high === TAGS.length, "a quality alarm per tag", 15_000);
    expect(await stop("SIGTERM")).toBe(0);

    const { transitions, lifecycle, data, all } = await readLog();
    const starting = lifecycle.filter((e) => e.type === GatewayEvent.Starting).at(-1)!;
    const started = lifecycle.filter((e) => e.type === GatewayEvent.Started).at(-1)!;
    const previousStart = lifecycle.filter((e) => e.type === GatewayEvent.Started).at(-2)!;
    const between = lifecycle.filter((e) => e.offset > previousStart.offset && e.offset < starting.offset);
    let clockStop: { offset: number; loggedAt: number };
    if (signal === "SIGTERM") {
      expect(between.map((e) => [e.type, e.data?.reason])).toEqual([[GatewayEvent.Stopping, "SIGTERM"]]);
      clockStop = between[0]!;
    } else {
      // a crash: nothing between the last run's start and this start says it stopped
      expect(between).toEqual([]);
      clockStop = all.filter((f) => f.offset < starting.offset).at(-1)!;
    }
    const raised = transitions.filter((t) => t.type === "alarm.active" && t.offset > clockStop.offset);
    expect(raised.map((t) => (t.data as AlarmState).id).sort()).toEqual(TAGS.map((t) => `${t}:quality`));
    // none fired between the kill and the stop (the test's premise: the stop came first)
    const lastGood = Math.max(...data.filter((f) => f.offset < clockStop.offset && !isBad(f.quality)).map((f) => f.offset));
    expect(transitions.filter((t) => t.type === "alarm.active" && t.offset > lastGood && t.offset <= clockStop.offset)).toEqual([]);
    for (const t of raised) {
      const tag = (t.data as AlarmState).tag!;
      const good = Math.max(...data.filter((f) => f.tag === tag && f.offset < clockStop.offset && !isBad(f.quality)).map((f) => f.offset));
      const bad = data.find((f) => f.tag === tag && f.offset > good && isBad(f.quality))!;
      const left = bad.loggedAt + BAD_FOR_MS * 1000 - clockStop.loggedAt;
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThan(BAD_FOR_MS * 1000);
      // the rest of its delay, counted from the start (the downtime does not count, the Bad time before it does)
      expect((t.data as AlarmState).since).toBe(started.loggedAt + left);
      expect(t.offset).toBeGreaterThan(started.offset);
    }
  }

  it("goes on with the Bad time a tag had before a planned stop: raised the rest of badForMs after the start", () => downWhileBad("SIGTERM"), 90_000);

  it("after a crash (SIGKILL) goes on with the Bad time a tag had at the last frame logged: the downtime does not count", () => downWhileBad("SIGKILL"), 90_000);
});
