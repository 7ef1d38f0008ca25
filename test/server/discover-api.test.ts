// POST /api/discover/opcua and /api/discover/modbus on a running gateway: admin scope only, the
// drafted files answered as JSON, bad options 400, an unreachable device 502, bounded in time, one
// discovery at a time.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { OPCUAServer } from "node-opcua";
import YAML from "yaml";
import { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";
import { startPlant } from "./discover-fixture.ts";

let g: TestGateway;
let plant: OPCUAServer;
let device: ModbusTcpServer;
let uaUrl = "";
let mbUrl = "";

beforeAll(async () => {
  const uaPort = await freePort();
  plant = await startPlant(uaPort);
  uaUrl = `opc.tcp://127.0.0.1:${uaPort}/UA/plant`;
  device = new ModbusTcpServer({ host: "127.0.0.1", port: await freePort(), size: 100, unitIds: [2] });
  await device.start();
  mbUrl = `tcp://127.0.0.1:${device.port}`;
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nwatchConfig: false\n`,
    "drivers.yml": "drivers: []\n",
    "variables.yml": "tags: []\n",
  });
}, 30_000);

afterAll(async () => {
  await g?.stop();
  await plant?.shutdown(0).catch(() => undefined);
  await device?.stop();
}, 30_000);

const post = async (path: string, body: unknown, scope = "admin") => {
  const r = await fetch(`${g.url}/api/discover/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${await token(null, { claims: { scope } })}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as any };
};

describe("POST /api/discover", () => {
  it("refuses a token without the admin scope with 403 before touching the device", async () => {
    const before = device.requests;
    for (const scope of ["read", "write"]) {
      expect(await post("modbus", { url: mbUrl, units: "1-3" }, scope)).toMatchObject({ status: 403, body: { error: "insufficient_scope" } });
      expect((await post("opcua", { url: uaUrl }, scope)).status).toBe(403);
    }
    expect(device.requests).toBe(before);
  });

  it("answers the files drafted from an OPC UA server", async () => {
    const r = await post("opcua", { url: uaUrl, driverId: "boiler", timeoutMs: 20_000 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tags: 8, truncated: false });
    expect(YAML.parse(r.body.files["variables.yml"]).tags.find((t: any) => t.tag === "boiler/Plant/Boiler/Temperature")).toMatchObject({ unit: "°C", type: "float64" });
    expect(YAML.parse(r.body.files["endpoints.yml"]).endpoints.boiler.url).toBe(uaUrl);
    // the gateway's own client PKI folder is used, and not written into the draft
    expect(YAML.parse(r.body.files["drivers.yml"]).drivers[0].config).toEqual({ mode: "subscription" });
  }, 30_000);

  it("answers the units and ranges a Modbus device serves, with the drafted files", async () => {
    const r = await post("modbus", { url: mbUrl, units: "1-3", maxAddress: 149, blockSize: 50, rate: 1000, requestTimeoutMs: 500 });
    expect(r.status).toBe(200);
    expect(r.body.units.map((u: any) => [u.unitId, u.answered])).toEqual([[1, false], [2, true], [3, false]]);
    expect(r.body.units[1].ranges).toEqual([{ area: "holding", start: 0, end: 99 }]);
    expect(r.body.files["variables.yml"]).toContain("unit2/holding/99");
  }, 30_000);

  it("stops a probe at its time limit with what it found, and refuses a second discovery meanwhile with 409", async () => {
    const t0 = performance.now();
    const before = device.requests;
    const slow = post("modbus", { url: mbUrl, units: "2", maxAddress: 65535, blockSize: 1, rate: 20, timeoutMs: 600 });
    await waitFor(() => device.requests > before, "the first probe at the device");
    expect(await post("modbus", { url: mbUrl, units: "2" })).toMatchObject({ status: 409, body: { error: "discovery_running" } });
    const r = await slow;
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(r.status).toBe(200);
    expect(r.body.truncated).toBe(true);
    expect(r.body.requests).toBeLessThan(20);
    // what it had found when the limit came is kept: unit 2 answers, its first registers read
    expect(r.body.units).toMatchObject([{ unitId: 2, answered: true, ranges: [{ area: "holding", start: 0 }] }]);
    expect(r.body.tags).toBe(r.body.requests - 1);
  }, 30_000);

  it("says 400 for bad options and 502 for a device it cannot reach, naming it", async () => {
    // the API's field, named as the API names it (the CLI's message says --units)
    expect(await post("modbus", { url: mbUrl, units: "1-300" })).toMatchObject({ status: 400, body: { error: "invalid_request", field: "units", message: expect.stringMatching(/^units: '1-300'/) } });
    expect((await post("modbus", { url: mbUrl, units: "1", blockSize: 126 })).status).toBe(400);
    // an RTU line is refused with the reason and what to use instead (it said "Expected string to match '^tcp://'")
    for (const url of ["serial:///dev/ttyUSB0?baud=9600", "rtu+tcp://127.0.0.1:4001"]) {
      const refused = await post("modbus", { url, units: "1" });
      expect(refused).toMatchObject({ status: 400, body: { error: "invalid_request", field: "url" } });
      expect(refused.body.message).toContain("edgectl discover modbus");
      expect(refused.body.message).toContain("no gateway polls");
    }
    const port = await freePort();
    const r = await post("modbus", { url: `tcp://127.0.0.1:${port}`, units: "1", requestTimeoutMs: 500 });
    expect(r).toMatchObject({ status: 502, body: { error: "discovery_failed", message: expect.stringContaining(`127.0.0.1:${port}`) } });
    expect((await post("opcua", { url: `opc.tcp://127.0.0.1:${port}`, timeoutMs: 3000 })).status).toBe(502);
  }, 30_000);
});
