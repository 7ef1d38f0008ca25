// The Modbus TCP slave bridge: serves tags of the log to Modbus masters (old SCADA, HMIs) from the
// register map of gateway.yml's `modbusSlave:` section; writes become commands (origin "modbus").
import { join } from "node:path";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/index.ts";
import type { EventLog } from "../../storage/index.ts";
import { parseModbusSlaveConfig } from "./config.ts";
import { ModbusSlave, type CommandExecutor } from "./server.ts";

export { ModbusSlave, type CommandExecutor, type SlaveStats } from "./server.ts";
export { ModbusSlaveConfig, MapEntry, parseModbusSlaveConfig } from "./config.ts";

/** The part of the gateway's context the slave uses (the composition root passes its context). */
export interface ModbusSlaveDeps {
  config: { dir: string; gateway: { modbusSlave: unknown } };
  log: EventLog;
  catalog: Catalog;
  commands: CommandExecutor;
  logger?: Logger;
}

/** The slave as a gateway service, or null when `modbusSlave.enabled` is false. Config errors throw ConfigError. */
export function createModbusSlave(deps: ModbusSlaveDeps): (ModbusSlave & { name: string }) | null {
  const { config, entries } = parseModbusSlaveConfig(deps.config.gateway.modbusSlave, join(deps.config.dir, "gateway.yml"), deps.catalog);
  if (!config.enabled) return null;
  const slave = new ModbusSlave({ config, entries, log: deps.log, catalog: deps.catalog, commands: deps.commands, logger: deps.logger });
  return Object.assign(slave, { name: "modbus-slave" });
}
