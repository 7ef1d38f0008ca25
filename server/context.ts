// What the composition root hands to every service and API plugin.
import type { Logger } from "pino";
import type { DriverManager, EndpointPool } from "../drivers/index.ts";
import type { Catalog } from "../schemas/index.ts";
import type { CommandBus, EventLog } from "../storage/index.ts";
import type { Config } from "./config.ts";
import type { Metrics } from "./metrics.ts";

export interface GatewayContext {
  config: Config;
  log: EventLog;
  catalog: Catalog;
  drivers: DriverManager;
  /** every write from outside goes through it: checkWrite -> commands.execute -> map the ack */
  commands: CommandBus;
  pool: EndpointPool;
  metrics: Metrics;
  logger: Logger;
}

/** A long-running part wired by the gateway (a bridge, the demo PLC ...), started in order, stopped in reverse. */
export interface Service {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
