// End to end: a gateway with the demo PLC, the Modbus driver polling it, the command executor and the
// Modbus slave. A SCADA master writes a setpoint to the slave; it becomes a CmdFrame (origin modbus),
// the executor writes it to the PLC, the ack answers the master, and the new value comes back through
// the poll and the log to the slave.
import { afterAll, beforeAll, expect, it, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type ModbusRTU from "modbus-serial";
import type { CmdFrame } from "../../../schemas/index.ts";
import { freePort, waitFor } from "../../helpers/index.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { exceptionOf, closeMaster, connectMaster } from "./harness.ts";

setDefaultTimeout(60_000);
const demoDir = join(import.meta.dir, "..", "..", "..", "server", "demo", "config");
let g: TestGateway;
let master: ModbusRTU;

beforeAll(async () => {
  const plcPort = await freePort();
  const slavePort = await freePort();
  g = await startGateway({
    "gateway.yml": [
      `demo: { enabled: true, port: ${plcPort} }`,
      `modbusSlave:`,
      `  enabled: true`,
      `  host: 127.0.0.1`,
      `  port: ${slavePort}`,
      `  writeAllowlist: [127.0.0.1]`,
      `  map:`,
      `    - { tag: line1/boiler/setpoint, area: holding, address: 0 }`,
      `    - { tag: line1/tank/level_setpoint, area: holding, address: 2, scale: 0.1 }`,
      `    - { tag: line1/boiler/temperature, area: input, address: 0, wordOrder: LE }`,
      `    - { tag: line1/plc/name, area: input, address: 10, length: 8 }`,
      `    - { tag: line1/valve/open, area: coil, address: 0 }`,
      `    - { tag: line1/pump/running, area: discrete, address: 0 }`,
    ].join("\n"),
    "endpoints.yml": readFileSync(join(demoDir, "endpoints.yml"), "utf8").replace(/127\.0\.0\.1:\$\{EDGE_DEMO_PLC_PORT:-5021\}/, `127.0.0.1:${plcPort}`),
    "drivers.yml": readFileSync(join(demoDir, "drivers.yml"), "utf8"),
    "variables.yml": readFileSync(join(demoDir, "variables.yml"), "utf8"),
  });
  // the slave serves what the driver polled: wait for the first values of the demo PLC in the log
  await waitFor(() => g.gw.ctx.log.latest().has("line1/plc/name"), "demo PLC polled", 30_000);
  master = await connectMaster(slavePort, { timeoutMs: 10_000 });
});

afterAll(async () => {
  await closeMaster(master);
  await g?.stop();
});

const f32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeFloatBE(v);
  return [b.readUInt16BE(0), b.readUInt16BE(2)];
};

it("serves the demo PLC's polled values to a Modbus master", async () => {
  const name = await waitFor(async () => (await master.readInputRegisters(10, 8)).buffer.toString("latin1").replace(/\0+$/, ""), "PLC name served", 10_000);
  expect(name).toBe("DEMO-PLC");
  expect((await master.readHoldingRegisters(0, 2)).buffer.readFloatBE(0)).toBe(85);
  expect((await master.readCoils(0, 1)).data[0]).toBe(true);
});

it("turns a holding register write into a command that reaches the PLC and comes back through the poll", async () => {
  const res = await master.writeRegisters(0, f32(95.5));
  expect(res).toEqual({ address: 0, length: 2 });
  // answered only after the ack: the command and its ok ack are both in the log
  const cmds: CmdFrame[] = [];
  for await (const f of g.gw.ctx.log.read({ from: 1, kinds: ["cmd"] })) cmds.push(f as CmdFrame);
  const cmd = cmds.find((c) => c.tag === "line1/boiler/setpoint" && c.value === 95.5);
  expect(cmd?.origin).toBe("modbus");
  expect(cmd?.actor).toBe("modbus:127.0.0.1");
  const ack = await g.gw.ctx.commands.waitForAck(cmd!.id, 5000);
  expect(ack?.ok).toBe(true);
  // the PLC holds the new setpoint: the driver polls it back, the slave serves it
  await waitFor(async () => (await master.readHoldingRegisters(0, 2)).buffer.readFloatBE(0) === 95.5, "new setpoint polled back", 20_000, 100);
});

it("writes a scaled int16 setpoint and a coil through the PLC", async () => {
  await master.writeRegister(2, 425); // level setpoint 42.5 %: raw 425 with the slave map's scale 0.1
  await waitFor(async () => (await master.readHoldingRegisters(2, 1)).data[0] === 425, "level setpoint polled back", 20_000, 100);
  await master.writeCoil(0, false);
  await waitFor(async () => (await master.readCoils(0, 1)).data[0] === false, "valve closed", 20_000, 100);
});

it("refuses a write to a read-only input or discrete input and a value beyond the tag's max", async () => {
  expect(await exceptionOf(master.writeRegisters(0, f32(500)))).toBe(3); // setpoint max 120
  expect(await exceptionOf(master.writeRegister(10, 1))).toBe(2); // input registers are not writable (holding 10 unmapped)
});

it("exposes the slave's requests, writes and exceptions on /metrics", async () => {
  const text = await (await fetch(`${g.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? NaN);
  expect(value("edge_modbus_slave_requests_total")).toBeGreaterThan(0);
  expect(value("edge_modbus_slave_writes_total")).toBeGreaterThanOrEqual(3); // the writes of the tests above
  expect(value("edge_modbus_slave_connections")).toBe(1);
  expect(text).toMatch(/^edge_modbus_slave_exceptions_total\{code="3"\} [1-9]/m);
});
