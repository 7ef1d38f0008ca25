// A tag the OPC UA server refuses is news once: a real gateway process (server/main.ts) reading a plant
// server in its own process logs each `opcua.tag_refused` when the refusal is new or its reason changes,
// not again after the driver reconnects (the plant killed and started again) or the gateway restarts;
// a tag refused before and served now gets one `opcua.tag_refusal_cleared`.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { EventFrame, Logged } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { spawnGateway, type GatewayProcess } from "../helpers/gateway-process.ts";
import { freePort, tempDir, waitFor, writeConfig } from "../helpers/index.ts";
import { Child } from "../helpers/process.ts";

let dir: ReturnType<typeof tempDir>;
let plantPort = 0;
let plant: Child | null = null;
let configDir = "";
let running: GatewayProcess | null = null;

async function startPlant(): Promise<void> {
  plant = new Child("the plant server", [process.execPath, join(import.meta.dir, "opcua-server-process.ts"), String(plantPort), "1"], { stderr: "inherit" });
  await plant.waitForOutput((out) => out.includes("ready"), "its ready line", 60_000);
}

/** variables.yml: sub/t0 always served; ratio and missing as each test sets them. */
function writeTags(ratio: { type: string }, missing: { nodeId: string }): void {
  writeConfig(configDir, {
    "variables.yml": [
      "tags:",
      '  - { tag: sub/t0, driver: sub, type: float64, address: { nodeId: "ns=1;s=T0" } }',
      `  - { tag: sub/ratio, driver: sub, type: ${ratio.type}, address: { nodeId: "ns=1;s=Ratio" } }`,
      `  - { tag: sub/missing, driver: sub, type: float64, address: { nodeId: "ns=1;s=${missing.nodeId}" } }`,
    ].join("\n"),
  });
}

beforeAll(async () => {
  dir = tempDir("edge-opcua-refusals-");
  plantPort = await freePort();
  await startPlant();
  configDir = writeConfig(join(dir.path, "config"), {
    "gateway.yml": `dataDir: ${join(dir.path, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: false }\nmodbusSlave: { enabled: false }\ndemo: { enabled: false }\nwatchConfig: false\ndrivers: { backoffBaseMs: 100, backoffMaxMs: 500 }\n`,
    "endpoints.yml": `endpoints:\n  plant: { url: "opc.tcp://127.0.0.1:${plantPort}/UA/plant", timeoutMs: 1000 }\n`,
    // reconnect off: a lost connection ends the read loop, and the manager starts it again (a driver restart)
    "drivers.yml": "drivers:\n  - { id: sub, type: opcua, endpoint: plant, config: { publishingIntervalMs: 50, keepAliveCount: 10, reconnect: false, connectAttempts: 1 } }\n",
  });
  writeTags({ type: "bool" }, { nodeId: "NoSuchNode" });
}, 70_000);

afterAll(async () => {
  await running?.stop("SIGKILL");
  await plant?.stop("SIGKILL");
  dir?.cleanup();
}, 30_000);

type ApiTag = { tag: string; quality: string };
const get = async <T>(path: string) => (await (await fetch(`${running!.url}${path}`)).json()) as T;
const qualities = async () => Object.fromEntries((await get<ApiTag[]>("/api/tags")).map((t) => [t.tag, t.quality]));

/** Waits until the tags have these qualities (the refusals are reported before the first value is read). */
async function waitForQualities(want: Record<string, string>): Promise<void> {
  await waitFor(async () => {
    const q = await qualities();
    return Object.entries(want).every(([tag, quality]) => q[tag] === quality);
  }, `qualities ${JSON.stringify(want)}`, 30_000);
}

async function runGateway(want: Record<string, string>): Promise<void> {
  await running?.stop("SIGKILL"); // left by a failed test: it holds the log
  running = await spawnGateway(configDir);
  await waitForQualities(want);
}
async function stopGateway(): Promise<void> {
  expect(await running!.stop("SIGTERM")).toBe(0);
  running = null;
}

/** The refusal events of the log as the stopped gateway left it, from `from`, and how often the driver was restarted. */
async function refusalEvents(from = 1): Promise<{ events: Logged<EventFrame>[]; head: number; backoffs: number }> {
  const log = await EventLog.open({ path: join(dir.path, "data", "log.duckdb"), tailFrames: 0 });
  const events: Logged<EventFrame>[] = [];
  let backoffs = 0;
  try {
    for await (const f of log.read({ from, kinds: ["event"] })) {
      if (f.kind !== "event") continue;
      if (f.type.startsWith("opcua.tag_refus")) events.push(f);
      if (f.type === "driver.state" && f.data?.state === "Backoff") backoffs++;
    }
    return { events, head: log.head, backoffs };
  } finally {
    await log.close();
  }
}

const REFUSED = { "sub/t0": "Good", "sub/ratio": "Bad_TypeMismatch", "sub/missing": "Bad_NodeIdUnknown" };
let headAfterFirst = 0;

describe("opcua.tag_refused across restarts", () => {
  it("logs each refusal once across a reconnect of the driver and a restart of the gateway", async () => {
    await runGateway(REFUSED);
    // the plant dies and comes back: the read loop ends, the driver is started again and refuses the same tags
    await plant!.stop("SIGKILL");
    await waitFor(async () => (await qualities())["sub/t0"] !== "Good", "sub/t0 not Good while the plant is down", 15_000);
    await startPlant();
    await waitForQualities(REFUSED);
    await stopGateway();
    await runGateway(REFUSED);
    await stopGateway();

    const { events, head, backoffs } = await refusalEvents();
    headAfterFirst = head;
    expect(backoffs).toBeGreaterThanOrEqual(1); // the driver was restarted after the plant died
    expect(events.map((e) => [e.type, e.tag, e.data!.quality])).toEqual([
      ["opcua.tag_refused", "sub/ratio", 0x80740000],
      ["opcua.tag_refused", "sub/missing", 0x80340000],
    ]);
    expect(String(events[0]!.data!.reason)).toContain("tag 'sub/ratio'");
  }, 120_000);

  it("logs a refusal again when its reason changes, and a clearing when a refused tag is served", async () => {
    writeTags({ type: "float64" }, { nodeId: "NoSuchNode2" });
    await runGateway({ "sub/t0": "Good", "sub/ratio": "Good", "sub/missing": "Bad_NodeIdUnknown" });
    await stopGateway();
    // refused again after being served: news again
    writeTags({ type: "bool" }, { nodeId: "NoSuchNode2" });
    await runGateway(REFUSED);
    await stopGateway();

    const { events } = await refusalEvents(headAfterFirst + 1);
    expect(events.map((e) => [e.type, e.tag])).toEqual([
      ["opcua.tag_refused", "sub/missing"],
      ["opcua.tag_refusal_cleared", "sub/ratio"],
      ["opcua.tag_refused", "sub/ratio"],
    ]);
    expect(String(events[0]!.data!.reason)).toContain("NoSuchNode2");
    expect(String(events[1]!.data!.reason)).toContain("refused before");
  }, 120_000);
});
