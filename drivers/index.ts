// Registration of the built-in drivers: adding a protocol adds a folder and one line here.
import type { DriverFactory } from "./contract.ts";
import { createSimulator } from "./simulator/index.ts";

export const builtinDrivers: ReadonlyMap<string, DriverFactory> = new Map<string, DriverFactory>([
  ["simulator", createSimulator],
]);

export * from "./contract.ts";
export * from "./endpoint.ts";
export * from "./errors.ts";
export { DriverManager, backoffDelay, DRIVER_STATES, type DriverState, type DriverStatus, type SupervisorSettings } from "./manager.ts";
