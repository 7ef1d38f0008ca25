// Registration of the built-in drivers: adding a protocol adds a folder and one line here.
import type { DriverFactory } from "./contract.ts";
import { createSimulator } from "./simulator/index.ts";
import { createModbus } from "./modbus/index.ts";
import { createOpcuaClient } from "./opcua/index.ts";
import { createMqttSource, MqttSourceDriver, type MqttSourceOptions } from "./mqtt/index.ts";

export const builtinDrivers: ReadonlyMap<string, DriverFactory> = new Map<string, DriverFactory>([
  ["simulator", createSimulator],
  ["modbus", createModbus],
  ["opcua", createOpcuaClient],
  ["mqtt", createMqttSource],
]);

/** The built-in drivers with what the gateway gives them: the MQTT source's decoder plugins. */
export function builtinDriverFactories(opts: MqttSourceOptions): Map<string, DriverFactory> {
  return new Map(builtinDrivers).set("mqtt", () => new MqttSourceDriver(opts));
}

export * from "./contract.ts";
export * from "./endpoint.ts";
export * from "./errors.ts";
export { DriverManager, backoffDelay, markPreviousRunUncertain, DRIVER_STATES, type DriverState, type DriverStatus, type SupervisorSettings } from "./manager.ts";
export { CommandExecutor, EXECUTING_EVENT, OUTCOME_UNKNOWN, type ExecutorOptions } from "./executor.ts";
