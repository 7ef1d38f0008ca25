// End to end, quality through Modbus: a gateway polls the demo PLC with its Modbus driver and serves the
// values with its Modbus slave. When the PLC goes away the driver marks its tags Bad and a SCADA master
// gets exception 0B (gateway target device failed to respond) instead of the last number; when the PLC
// is back, values again.
import { afterAll, beforeAll, expect, it, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type ModbusRTU from "modbus-serial";
import { createDemoPlc, type DemoPlc } from "../../../server/demo/plc.ts";
import { isBad } from "../../../schemas/index.ts";
import { freePort, waitFor } from "../../helpers/index.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { exceptionOf, closeMaster, connectMaster } from "./harness.ts";

setDefaultTimeout(60_000);
const demoDir = join(import.meta.dir, "..", "..", "..", "server", "demo", "config");
const TAG = "line1/boiler/temperature";
let g: TestGateway;
let plc: DemoPlc;
let plcPort: number;
let master: ModbusRTU;

beforeAll(async () => {
  plcPort = await freePort();
  plc = createDemoPlc({ host: "127.0.0.1", port: plcPort });
  await plc.start();
  const slavePort = await freePort();
  g = await startGateway({
    "gateway.yml": ["modbusSlave:", "  enabled: true", "  host: 127.0.0.1", `  port: ${slavePort}`, "  map:", `    - { tag: ${TAG}, area: input, address: 0 }`].join("\n"),
    "endpoints.yml": readFileSync(join(demoDir, "endpoints.yml"), "utf8").replace(/127\.0\.0\.1:\$\{EDGE_DEMO_PLC_PORT:-5021\}/, `127.0.0.1:${plcPort}`),
    "drivers.yml": readFileSync(join(demoDir, "drivers.yml"), "utf8"),
    "variables.yml": readFileSync(join(demoDir, "variables.yml"), "utf8"),
  });
  master = await connectMaster(slavePort, { timeoutMs: 10_000 });
});

afterAll(async () => {
  await closeMaster(master);
  await g?.stop();
  await plc?.stop();
});

const temperature = async () => (await master.readInputRegisters(0, 2)).buffer.readFloatBE(0);

it("serves the polled value, answers 0B while the PLC is down, and serves values again once it is back", async () => {
  const served = await waitFor(async () => {
    const v = await temperature();
    return Number.isFinite(v) && v > 0 ? v : null;
  }, "the PLC's temperature served", 20_000, 50);
  expect(served).toBeGreaterThan(0);

  await plc.stop();
  await waitFor(() => isBad(g.gw.ctx.log.latest().get(TAG)?.quality ?? 0), "the driver marks the tag Bad", 20_000, 50);
  await waitFor(async () => (await exceptionOf(temperature())) === 0x0b, "exception 0B for the Bad tag", 10_000, 50);

  plc = createDemoPlc({ host: "127.0.0.1", port: plcPort });
  await plc.start();
  // the driver reconnects after its backoff (1 s, 2 s ...)
  await waitFor(async () => (await temperature()) > 0, "values again after the PLC is back", 30_000, 100);
});
