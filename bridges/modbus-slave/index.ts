// The Modbus TCP slave bridge: serves tags of the log to Modbus masters (old SCADA, HMIs) from the
// register map of gateway.yml's `modbusSlave:` section; writes become commands (origin "modbus").
import { join } from "node:path";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import type { Catalog } from "../../schemas/index.ts";
import type { EventLog } from "../../storage/index.ts";
import { parseModbusSlaveConfig } from "./config.ts";
import { ModbusSlave, type CommandExecutor } from "./server.ts";

export { ModbusSlave, type CommandExecutor, type SlaveStats, type SlaveStatus } from "./server.ts";
export { ModbusSlaveConfig, MapEntry, parseModbusSlaveConfig, type OnBad, type ResolvedEntry } from "./config.ts";

/** The part of the gateway's context the slave uses (the composition root passes its context). */
export interface ModbusSlaveDeps {
  /** read again on every catalog 'change' (config reload): pass a getter of the current config to follow reloads */
  config: { dir: string; gateway: { modbusSlave: unknown } };
  log: EventLog;
  catalog: Catalog;
  commands: CommandExecutor;
  logger?: Logger;
  /** where to expose the slave's counters (edge_modbus_slave_*) */
  registry?: Registry;
}

/** The slave as a gateway service, or null when `modbusSlave.enabled` is false. Config errors throw ConfigError. */
export function createModbusSlave(deps: ModbusSlaveDeps): (ModbusSlave & { name: string }) | null {
  const parse = () => parseModbusSlaveConfig(deps.config.gateway.modbusSlave, join(deps.config.dir, "gateway.yml"), deps.catalog);
  const { config, entries } = parse();
  if (!config.enabled) return null;
  // only the map follows reloads; the listener settings of `config` stay until a restart
  const currentMap = () => parse().entries;
  const slave = new ModbusSlave({ config, entries, log: deps.log, catalog: deps.catalog, commands: deps.commands, logger: deps.logger, currentMap });
  if (deps.registry) exposeStats(slave, deps.registry);
  return Object.assign(slave, { name: "modbus-slave" });
}

/** Prometheus view of the slave's counters, read at scrape time (nothing on the request path). */
function exposeStats(slave: ModbusSlave, registry: Registry): void {
  const s = slave.stats;
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  gauge("edge_modbus_slave_connections", "Open Modbus master connections", () => s.connections);
  gauge("edge_modbus_slave_requests_total", "Requests answered", () => s.requests);
  gauge("edge_modbus_slave_refused_connections_total", "Connections refused (allowlist, limit)", () => s.refused);
  gauge("edge_modbus_slave_bad_frames_total", "Malformed frames (connection closed)", () => s.badFrames);
  gauge("edge_modbus_slave_writes_total", "Values written by masters (commands)", () => s.writes);
  gauge("edge_modbus_slave_writes_denied_total", "Write requests refused with exception 01: client not in writeAllowlist", () => s.writesDenied);
  new Gauge({
    name: "edge_modbus_slave_exceptions_total",
    help: "Exception responses by code",
    labelNames: ["code"],
    registers: [registry],
    collect() {
      for (const [code, n] of Object.entries(s.exceptions)) this.set({ code }, n);
    },
  });
}
