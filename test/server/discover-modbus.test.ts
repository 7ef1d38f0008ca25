// `discover modbus` against the project's Modbus TCP server (server/demo/modbus-server.ts) serving
// units 1 and 3 with 300 holding registers (exception 02 beyond, 0x0B for other units): the probe
// finds the two units and the exact readable range, one request at a time within its bounds, and
// the draft it writes validates and polls Good with the device's values.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { checkConfig } from "../../server/config-check.ts";
import { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { DISCOVERED_FILES } from "../../server/discover/files.ts";
import { discoverModbus, parseUnits, type ModbusDiscovery } from "../../server/discover/modbus.ts";
import { edgectl } from "../../server/edgectl.ts";
import { Quality } from "../../schemas/quality.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { ptyPair, RtuTestSlave } from "../helpers/serial.ts";
import { silenced } from "./discover-fixture.ts";

const dir = tempDir("edge-discover-modbus-");
let device: ModbusTcpServer;
let url = "";
let gw: TestGateway | undefined;

beforeAll(async () => {
  device = new ModbusTcpServer({ host: "127.0.0.1", port: await freePort(), size: 300, unitIds: [1, 3] });
  for (let i = 0; i < 300; i++) device.holding[i] = 5000 + i;
  await device.start();
  url = `tcp://127.0.0.1:${device.port}`;
});

afterAll(async () => {
  await gw?.stop();
  await device?.stop();
  dir.cleanup();
}, 30_000);

describe("discover modbus", () => {
  let r: ModbusDiscovery;

  it("finds the units that answer and the exact readable register range, narrowing blocks on exception 02", async () => {
    const before = device.requests;
    r = await discoverModbus({ url, units: parseUnits("1-4"), maxAddress: 319, blockSize: 40, rate: 2000, timeoutMs: 500, driverId: "plc" });
    expect(r.units.map((u) => [u.unitId, u.answered])).toEqual([[1, true], [2, false], [3, true], [4, false]]);
    expect(r.units[1]!.reason).toContain("exception 11");
    for (const u of [r.units[0]!, r.units[2]!]) expect(u.ranges).toEqual([{ area: "holding", start: 0, end: 299 }]);
    expect(r.tags).toBe(600);
    expect(r.truncated).toBe(false);
    expect(device.requests - before).toBe(r.requests);
  }, 30_000);

  it("keeps to its rate limit and its request budget", async () => {
    const t0 = performance.now();
    const slow = await discoverModbus({ url, units: [1], maxAddress: 99, blockSize: 50, rate: 20, timeoutMs: 500 });
    // 3 requests (the unit's answer, two blocks) at 20/s: two gaps of 50 ms at least
    expect(slow.requests).toBe(3);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
    const cut = await discoverModbus({ url, units: [1, 3], maxAddress: 319, blockSize: 40, rate: 2000, maxRequests: 5 });
    expect(cut).toMatchObject({ requests: 5, truncated: true });
    expect(cut.files["variables.yml"]).toContain("probe cut after 5 requests");
  }, 30_000);

  it("drafts uint16 tags unit<N>/holding/<addr> grouped by range, and files that validate and poll Good", async () => {
    const tags = (YAML.parse(r.files["variables.yml"]) as { tags: { tag: string; type: string; address: unknown }[] }).tags;
    expect(tags[0]).toMatchObject({ tag: "unit1/holding/0", type: "uint16", address: { area: "holding", address: 0, unitId: 1 } });
    expect(tags.at(-1)).toMatchObject({ tag: "unit3/holding/299", address: { unitId: 3 } });
    expect(r.files["variables.yml"]).toContain("# unit 1 holding 0-299 (300 registers)");
    expect(r.files["variables.yml"]).toContain("# unit 2: no answer");
    const out = join(dir.path, "out");
    const code = await silenced(() => edgectl(["discover", "modbus", url, "--units", "1-4", "--max-address", "319", "--block", "40", "--rate", "2000", "--driver", "plc", "--out", out]));
    expect(code).toBe(0);
    const { problems } = await checkConfig(out);
    expect(problems.map((p) => `${p.file}: ${p.path}: ${p.detail}`)).toEqual([]);
    gw = await startGateway(Object.fromEntries(DISCOVERED_FILES.map((n) => [n, readFileSync(join(out, n), "utf8")])));
    const latest = (tag: string) => gw!.gw.ctx.log.latest().get(tag);
    await waitFor(() => ["unit1/holding/0", "unit1/holding/299", "unit3/holding/150"].every((t) => latest(t)?.quality === Quality.Good), "the drafted tags Good", 20_000);
    expect([latest("unit1/holding/0")!.value, latest("unit1/holding/299")!.value, latest("unit3/holding/150")!.value]).toEqual([5000, 5299, 5150]);
  }, 40_000);

  it("writes nothing and exits 1 when no unit answers (a draft without a tag would load and poll nothing)", async () => {
    const out = join(dir.path, "none");
    const code = await silenced(() => edgectl(["discover", "modbus", url, "--units", "5-6", "--rate", "2000", "--timeout-ms", "300", "--out", out]));
    expect(code).toBe(1);
    expect(existsSync(out)).toBe(false);
  }, 20_000);

  it("probes the units on an RTU serial line (a pty): two that answer, a silent one and one whose CRC is wrong, and drafts a serial endpoint", async () => {
    const pair = await ptyPair(dir.path, "rs485");
    const slave = await RtuTestSlave.open(pair.b, [1, 2, 3, 4]); // 100 holding registers each, exception 02 beyond
    slave.behaviour.set(3, "silent");
    slave.behaviour.set(4, "corrupt-crc");
    try {
      const serial = `serial://${pair.a}?baud=19200&parity=even`;
      const found = await discoverModbus({ url: serial, units: [1, 2, 3, 4], maxAddress: 149, blockSize: 50, rate: 2000, timeoutMs: 200 });
      expect(found.units.map((u) => [u.unitId, u.answered, u.ranges.map((x) => `${x.start}-${x.end}`)])).toEqual([[1, true, ["0-99"]], [2, true, ["0-99"]], [3, false, []], [4, false, []]]);
      expect(found.units[3]!.reason).toContain("garbled");
      expect(YAML.parse(found.files["endpoints.yml"]).endpoints.modbus1.url).toBe(serial);
      expect(found.files["variables.yml"]).toContain("# unit 2 holding 0-99 (100 registers)");
      // one request at a time on the line: the slave saw each of them whole (no two frames run together)
      expect(slave.requests.length).toBe(found.requests);
    } finally {
      slave.close();
      await pair.stop();
    }
  }, 30_000);

  it("refuses bad options with the option's name", async () => {
    expect(() => parseUnits("1-300")).toThrow("--units: '1-300'");
    await expect(discoverModbus({ url, units: [1], blockSize: 200 })).rejects.toThrow("--block must be an integer from 1 to 125");
    await expect(discoverModbus({ url: "opc.tcp://127.0.0.1:4840", units: [1] })).rejects.toThrow("only tcp://, serial:// and rtu+tcp:// endpoints are probed");
    await expect(discoverModbus({ url: "serial:///dev/ttyUSB0", units: [1], serialLines: false })).rejects.toThrow("serial lines are probed by 'edgectl discover modbus'");
    const port = await freePort();
    await expect(discoverModbus({ url: `tcp://127.0.0.1:${port}`, units: [1], timeoutMs: 500 })).rejects.toThrow(`tcp://127.0.0.1:${port}`);
  }, 20_000);
});
