// Quality after a gateway crash: the gateway (a child process) reads a Modbus PLC (another child
// process), is SIGKILLed, and restarts while the PLC is down. No tag may be served as Good until its
// driver reads it again: the previous run's values come back as Uncertain_LastUsableValue (same value
// and source timestamp), committed before any bridge starts, then Bad once the driver fails to read.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { isGood, Quality, type DataFrame, type Logged } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { spawnGateway } from "../helpers/gateway-process.ts";
import { freePort, tempDir, waitFor, writeConfig } from "../helpers/index.ts";
import { ModbusDevice } from "../helpers/modbus-device.ts";

let dir: ReturnType<typeof tempDir>;
let device: ModbusDevice;
let files: Record<string, string>;
const TAGS = ["plc/coil", "plc/discrete", "plc/holding", "plc/input", "plc/input32"];

beforeAll(async () => {
  dir = tempDir();
  device = new ModbusDevice(await freePort());
  await device.start();
  files = {
    "gateway.yml": `dataDir: ${join(dir.path, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: false }\nmodbusSlave: { enabled: false }\ndemo: { enabled: false }\n`,
    "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:${device.port}", timeoutMs: 300 }\n`,
    "drivers.yml": `drivers:\n  - id: plc\n    type: modbus\n    endpoint: plc\n    config: { intervalMs: 100, groups: { slow: 1000 } }\n`,
    "variables.yml": `tags:
  - { tag: plc/coil, driver: plc, type: bool, address: { area: coil, address: 1 } }
  - { tag: plc/discrete, driver: plc, type: bool, address: { area: discrete, address: 0 } }
  - { tag: plc/holding, driver: plc, type: uint16, address: { area: holding, address: 5 } }
  - { tag: plc/input, driver: plc, type: uint16, address: { area: input, address: 7 }, group: slow }
  - { tag: plc/input32, driver: plc, type: uint32, address: { area: input, address: 20 }, group: slow }
`,
  };
  writeConfig(join(dir.path, "config"), files);
});
afterAll(async () => {
  await device?.kill();
  dir?.cleanup();
});

/** The first run: a gateway process that reads the PLC until every tag is Good, then is SIGKILLed. */
async function runAndCrash(): Promise<void> {
  const { child, url } = await spawnGateway(join(dir.path, "config"), { stderr: "ignore", env: { EDGE_HTTP_PORT: "0" } });
  try {
    await waitFor(async () => (await tagsOf(url)).every((t) => t.quality === "Good"), "every tag Good in the first run", 20_000);
  } finally {
    await child.stop("SIGKILL");
  }
}

type ApiTag = { tag: string; value: unknown; quality: string; ts: string | null };
async function tagsOf(url: string): Promise<ApiTag[]> {
  return (await (await fetch(`${url}/api/tags`)).json()) as ApiTag[];
}

describe("gateway restarted with the PLC down", () => {
  let t: TestGateway | null = null;
  afterAll(async () => {
    await t?.gw.stop();
  });

  it("serves no tag as Good until it is read: the previous run's values are Uncertain_LastUsableValue, then Bad", async () => {
    await runAndCrash();
    device.signal("SIGKILL");
    // what the crashed run left: every tag Good
    const before = await EventLog.open({ path: join(dir.path, "data", "log.duckdb") });
    const head = before.head;
    const last = new Map(TAGS.map((tag) => [tag, before.latest().get(tag)!]));
    await before.close();
    for (const f of last.values()) expect(f.quality).toBe(Quality.Good);

    t = await startGateway(files, { keepDir: dir.path });
    const served = await tagsOf(t.url);
    expect(served.filter((x) => x.quality === "Good")).toEqual([]);
    for (const x of served) expect(["Uncertain_LastUsableValue", "Bad_CommunicationError", "Bad_Timeout"]).toContain(x.quality);
    const log = t.gw.ctx.log;
    await waitFor(() => TAGS.every((tag) => log.latest().get(tag)!.quality === Quality.Bad_CommunicationError), "every tag Bad once the driver fails to connect", 5_000);
    // in the log: each tag's first frame of this run is its last value, Uncertain, same source timestamp; never Good
    const run2: Logged<DataFrame>[] = [];
    for await (const f of log.read({ from: head + 1, kinds: ["data"] })) if (f.kind === "data") run2.push(f);
    for (const tag of TAGS) {
      const mine = run2.filter((f) => f.tag === tag);
      expect(mine[0]).toMatchObject({ value: last.get(tag)!.value, ts: last.get(tag)!.ts, quality: Quality.Uncertain_LastUsableValue });
      expect(mine.filter((f) => isGood(f.quality))).toEqual([]);
    }

    await device.start();
    await waitFor(async () => (await tagsOf(t!.url)).every((x) => x.quality === "Good"), "every tag Good once read again", 15_000);
    expect((await tagsOf(t.url)).find((x) => x.tag === "plc/input")?.value).toBe(2007);
  }, 60_000);
});
