// The Modbus slave follows config hot reload: a real gateway (simulator driver with constant signals)
// and a modbus-serial master whose one connection stays open across every edit. Reloads are called
// directly (watchConfig off) so each edit is applied exactly once, when the test says.
import { afterAll, beforeAll, expect, it, setDefaultTimeout } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type ModbusRTU from "modbus-serial";
import { reloadConfig } from "../../../server/reload.ts";
import { freePort, waitFor } from "../../helpers/index.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { exceptionOf, closeMaster, connectMaster } from "./harness.ts";

setDefaultTimeout(60_000);

const drivers = [
  "drivers:",
  "  - id: sim",
  "    type: simulator",
  "    config:",
  "      intervalMs: 50",
  "      signals:",
  "        a/one: { shape: constant, min: 11, max: 11, periodMs: 1000 }",
  "        a/two: { shape: constant, min: 22, max: 22, periodMs: 1000 }",
  "        a/three: { shape: constant, min: 33, max: 33, periodMs: 1000 }",
].join("\n");
const variables = `tags:\n${["a/one", "a/two", "a/three"].map((t) => `  - { tag: ${t}, driver: sim, type: int16 }`).join("\n")}\n`;

let g: TestGateway;
let master: ModbusRTU;
let slavePort: number;
const gatewayYml = (map: string[]) =>
  ["watchConfig: false", "modbusSlave:", "  enabled: true", "  host: 127.0.0.1", `  port: ${slavePort}`, "  map:", ...map.map((m) => `    - ${m}`)].join("\n") + "\n";
// the helper appends dataDir/http/opcua to the first gateway.yml; later edits keep them
const writeGateway = (map: string[]) =>
  writeFileSync(join(g.dir, "config", "gateway.yml"), gatewayYml(map) + `dataDir: ${join(g.dir, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: false }\n`);

beforeAll(async () => {
  slavePort = await freePort();
  g = await startGateway({ "gateway.yml": gatewayYml(["{ tag: a/one, area: holding, address: 0 }"]), "drivers.yml": drivers, "variables.yml": variables });
  await waitFor(() => g.gw.ctx.log.latest().has("a/one") && g.gw.ctx.log.latest().has("a/two"), "first simulator values", 30_000);
  master = await connectMaster(slavePort, { timeoutMs: 10_000 });
});

afterAll(async () => {
  await closeMaster(master);
  await g?.stop();
});

it("serves a tag added to the map in gateway.yml after the reload, on the master's open connection", async () => {
  expect((await master.readHoldingRegisters(0, 1)).data).toEqual([11]);
  expect(await exceptionOf(master.readHoldingRegisters(1, 1))).toBe(2);
  writeGateway(["{ tag: a/one, area: holding, address: 0 }", "{ tag: a/two, area: holding, address: 1 }"]);
  // the slave rebuilds its map on the catalog's 'change' that the reload emits
  expect((await reloadConfig(g.gw.ctx)).ok).toBe(true);
  expect((await master.readHoldingRegisters(0, 2)).data).toEqual([11, 22]);
  expect(master.isOpen).toBe(true);
  expect(g.gw.ctx.config.gateway.modbusSlave.port).toBe(slavePort);
  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  expect(metrics).toMatch(/^edge_modbus_slave_connections 1$/m); // the same connection, not a reconnect
});

it("answers exception 02 for a tag removed from the map, while the rest keeps serving", async () => {
  writeGateway(["{ tag: a/two, area: holding, address: 1 }"]);
  expect((await reloadConfig(g.gw.ctx)).ok).toBe(true);
  expect(await exceptionOf(master.readHoldingRegisters(0, 1))).toBe(2);
  expect((await master.readHoldingRegisters(1, 1)).data).toEqual([22]);
  expect(master.isOpen).toBe(true);
});

it("refuses an invalid map edit with gateway.yml and the path, and the old map keeps serving", async () => {
  // an overlap: a/three over a/two's register
  writeGateway(["{ tag: a/two, area: holding, address: 1 }", "{ tag: a/three, area: holding, address: 1 }"]);
  const overlap = await reloadConfig(g.gw.ctx);
  expect(overlap.ok).toBe(false);
  expect(overlap.error).toContain(`${join(g.dir, "config", "gateway.yml")} at modbusSlave.map[1].address`);
  // an unknown tag
  writeGateway(["{ tag: a/two, area: holding, address: 1 }", "{ tag: a/nope, area: holding, address: 5 }"]);
  const unknown = await reloadConfig(g.gw.ctx);
  expect(unknown.ok).toBe(false);
  expect(unknown.error).toContain("gateway.yml at modbusSlave.map[1].tag: unknown tag 'a/nope'");
  // removing a mapped tag from variables.yml is refused the same way: the running map names it
  writeGateway(["{ tag: a/two, area: holding, address: 1 }"]);
  writeFileSync(join(g.dir, "config", "variables.yml"), `tags:\n  - { tag: a/one, driver: sim, type: int16 }\n  - { tag: a/three, driver: sim, type: int16 }\n`);
  const removed = await reloadConfig(g.gw.ctx);
  expect(removed.ok).toBe(false);
  expect(removed.error).toContain("gateway.yml at modbusSlave.map[0].tag: unknown tag 'a/two'");
  expect(g.gw.ctx.catalog.has("a/two")).toBe(true);
  expect((await master.readHoldingRegisters(1, 1)).data).toEqual([22]);
  expect(await exceptionOf(master.readHoldingRegisters(5, 1))).toBe(2);
  expect(master.isOpen).toBe(true);
});

it("re-encodes a mapped tag retyped in variables.yml after the reload", async () => {
  writeFileSync(join(g.dir, "config", "variables.yml"), variables.replace("tag: a/two, driver: sim, type: int16", "tag: a/two, driver: sim, type: float32"));
  const r = await reloadConfig(g.gw.ctx);
  expect(r.ok).toBe(true);
  // the driver restarted with the new type: wait for a float value, then for the slave to serve it as two registers
  await waitFor(async () => (await master.readHoldingRegisters(1, 2)).buffer.readFloatBE(0) === 22, "a/two served as float32", 20_000, 100);
  expect(master.isOpen).toBe(true);
});

it("keeps the old map and logs an error when a catalog change leaves the map invalid", async () => {
  // past reloadConfig's check (which refuses such an edit): the catalog replaced directly without a/two
  const all = g.gw.ctx.catalog.all();
  const errors: string[] = [];
  const logger = g.gw.ctx.logger;
  const spy = logger.error.bind(logger);
  logger.error = ((obj: { error?: string }, msg?: string) => {
    errors.push(`${msg}: ${obj?.error}`);
    return spy(obj as never, msg as never);
  }) as typeof logger.error;
  try {
    g.gw.ctx.catalog.replace(all.filter((t) => t.tag !== "a/two"));
    expect(errors.join("\n")).toContain("old map keeps serving: ");
    expect(errors.join("\n")).toContain("gateway.yml at modbusSlave.map[0].tag: unknown tag 'a/two'");
    expect((await master.readHoldingRegisters(1, 2)).buffer.readFloatBE(0)).toBe(22);
  } finally {
    logger.error = spy;
    g.gw.ctx.catalog.replace(all);
  }
});
