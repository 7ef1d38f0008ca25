// What the composition root hands to every service and API plugin.
import type { Logger } from "pino";
import type { DriverManager, EndpointPool } from "../drivers/index.ts";
import type { Catalog } from "../schemas/index.ts";
import type { CommandBus, EventLog } from "../storage/index.ts";
import type { Config } from "./config.ts";
import type { Metrics } from "./metrics.ts";

import type { PluginRegistry } from "../drivers/plugins/registry.ts";

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
  /** the plugin drivers and decoders under <config>/plugins (absent in bare tests) */
  plugins?: PluginRegistry;
  /** the services the gateway started, in start order (for the readiness document); set by the gateway */
  services?: () => readonly Service[];
}

// Services report the shared ComponentStatus of schemas/health.ts (bridges import it from there, not from server/).
export type { ComponentStatus } from "../schemas/health.ts";
import type { ComponentStatus } from "../schemas/health.ts";

/** A long-running part wired by the gateway (a bridge, the demo PLC ...), started in order, stopped in reverse. */
export interface Service {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** its state for the readiness document; absent: the service has nothing to report */
  status?(): ComponentStatus;
}
