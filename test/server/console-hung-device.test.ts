// The console's views of a hung device (a Modbus server in a child process stopped with SIGSTOP): the
// driver stays Active (its connection is open, its reads time out), so GET /api/drivers and
// GET /api/overview must say from the tags' quality that nothing is being read, and stop saying so
// once the device answers again.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, waitFor } from "../helpers/index.ts";
import { ModbusDevice } from "../helpers/modbus-device.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let device: ModbusDevice;
let reader: string;

beforeAll(async () => {
  device = new ModbusDevice(await freePort());
  await device.start();
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`,
    "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:${device.port}", timeoutMs: 300 }\n`,
    // many failures before a restart: the driver stays Active while the device hangs
    "drivers.yml": "drivers:\n  - { id: plc, type: modbus, endpoint: plc, config: { intervalMs: 100, failuresBeforeRestart: 1000 } }\n",
    "variables.yml": "tags:\n  - { tag: a, driver: plc, type: uint16, address: { area: holding, address: 0 } }\n  - { tag: b, driver: plc, type: uint16, address: { area: holding, address: 1 } }\n",
  });
  reader = `Bearer ${await token(null, { claims: { scope: "read", tenant: "default" } })}`;
}, 30_000);
afterAll(async () => {
  await g?.stop();
  await device?.kill();
});

const get = async <T>(path: string): Promise<T> => (await fetch(`${g.url}${path}`, { headers: { authorization: reader } })).json() as Promise<T>;
type Driver = { state: string; badTags: number; advice: { words: string; todo: string } };
type Overview = { status: string; reasons: string[]; drivers: Array<{ id: string; badTags: number }> };

describe("a hung device in the console's views and /readyz", () => {
  it("says within seconds that the Active driver's tags are all Bad (timeout) on the Devices and Overview answers, and clears it once the device answers", async () => {
    await waitFor(async () => (await get<Driver[]>("/api/drivers"))[0]?.advice.words.includes("every tag is up to date"), "the driver reading", 15_000, 100);
    expect((await get<Overview>("/api/overview")).status).toBe("ok");
    device.signal("SIGSTOP");
    const d = await waitFor(async () => {
      const d = (await get<Driver[]>("/api/drivers"))[0]!;
      return d.badTags === 2 ? d : null;
    }, "both tags Bad in GET /api/drivers", 5000, 100);
    expect(d.state).toBe("Active");
    expect(d.advice.words).toContain("all 2 tags are Bad (Bad_Timeout)");
    expect(d.advice.words).toContain("did not answer in time");
    const o = await get<Overview>("/api/overview");
    expect(o.status).toBe("down"); // the only driver reads nothing
    expect(o.reasons).toContain("drivers: driver plc is Active but 2 of 2 tags are Bad (Bad_Timeout)");
    expect(o.drivers[0]!.badTags).toBe(2);
    // the orchestrator's view says it too: nothing is being read (the only driver's tags are all Bad)
    const ready = await fetch(`${g.url}/readyz`);
    const r = (await ready.json()) as { status: string; components: { drivers: { state: string; reasons: string[] } } };
    expect(r.components.drivers.state).toBe("down");
    expect(r.components.drivers.reasons).toContain("driver plc is Active but 2 of 2 tags are Bad (Bad_Timeout)");
    expect(r.status).not.toBe("ok");
    device.signal("SIGCONT");
    await waitFor(async () => (await get<Driver[]>("/api/drivers"))[0]?.advice.words.includes("every tag is up to date"), "the driver reading again", 15_000, 100);
    expect((await get<Overview>("/api/overview")).status).toBe("ok");
    expect(((await (await fetch(`${g.url}/readyz`)).json()) as { components: { drivers: { state: string } } }).components.drivers.state).toBe("ok");
  }, 40_000);
});
