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
  /** the services the gateway started, in start order (for the readiness document); set by the gateway */
  services?: () => readonly Service[];
}

/**
 * What a part of the gateway says of itself in the readiness document (GET /readyz): "ok" working,
 * "degraded" working with a problem an operator should know (retrying, lagging, a peer away), "down"
 * not doing its job. `reasons` are sentences for people; the other fields are details (counts, lag ...).
 */
export interface ComponentStatus {
  state: "ok" | "degraded" | "down";
  reasons: string[];
  [detail: string]: unknown;
}

/** A long-running part wired by the gateway (a bridge, the demo PLC ...), started in order, stopped in reverse. */
export interface Service {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** its state for the readiness document; absent: the service has nothing to report */
  status?(): ComponentStatus;
}
