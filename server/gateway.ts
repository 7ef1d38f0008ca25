// The composition root: config -> log -> drivers -> bridges -> HTTP. Started in that order, stopped in
// reverse, so that on shutdown the writer flushes after every producer has stopped.
import { join } from "node:path";
import type { Logger } from "pino";
import { builtinDriverFactories, CommandExecutor, DriverManager, EndpointPool, markPreviousRunUncertain } from "../drivers/index.ts";
import { PluginRegistry } from "../drivers/plugins/registry.ts";
import { Catalog, GATEWAY_SOURCE, GatewayEvent, type EventFrame } from "../schemas/index.ts";
import { CommandBus, deadline, EventLog, TIMED_OUT, type RecoveredEvent } from "../storage/index.ts";
import { createApi } from "./api/index.ts";
import type { Config } from "./config.ts";
import { loadGatewayConfig } from "./config-check.ts";
import type { GatewayContext, Service } from "./context.ts";
import { archiveDirOf, interruptQueries } from "./history.ts";
import { createLogger, routeOpcuaLogs } from "./logging.ts";
import { Metrics } from "./metrics.ts";
import { openDoorEvent, openDoors } from "./open-doors.ts";
import { driverSpecs } from "./reload.ts";
import { earlyServices, services } from "./services.ts";

export interface GatewayOptions {
  configDir: string;
  logger?: Logger;
}

export class Gateway {
  private readonly started: Service[] = [];
  private executor: CommandExecutor | null = null;
  private http: { stop(): unknown; server?: { port?: number } | null } | null = null;
  private stopping: Promise<void> | null = null;

  private constructor(readonly ctx: GatewayContext) {}

  get httpPort(): number {
    return this.http?.server?.port ?? 0;
  }

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const config: Config = await loadGatewayConfig(opts.configDir);
    const logger = opts.logger ?? createLogger({ name: config.gateway.gatewayId });
    // node-opcua prints its own lines otherwise: into the same stream, not in the same format
    routeOpcuaLogs(logger);
    const q = config.gateway.query;
    // the SQL sandbox is a property of the database instance (see storage/README.md), so it is set at open
    const sandbox = { archiveDir: archiveDirOf(config.gateway.dataDir), memoryLimit: q.memoryLimit, ...(q.threads ? { threads: q.threads } : {}) };
    const log = await EventLog.open({ path: join(config.gateway.dataDir, "log.duckdb"), ...config.gateway.log, sandbox });
    const metrics = new Metrics({ tagLabels: config.gateway.metrics.tagLabels });
    metrics.watchLog(log);
    // the plugin registry adds and removes `plugin:<name>` factories in this map at run time; MQTT
    // sources find their decoder plugins in it (created below, asked when a driver starts)
    const factories = builtinDriverFactories({ decoders: (name) => plugins.decoder(name) });
    const drivers = new DriverManager({ log, factories, settings: config.gateway.drivers, dataDir: config.gateway.dataDir });
    const plugins = new PluginRegistry({
      configDir: config.dir,
      settings: config.gateway.plugins,
      factories,
      appendEvent: (f) => drivers.appendEvent(f),
      log: (plugin, level, msg) => logger[level === "error" || level === "warn" || level === "debug" ? level : "info"]({ plugin }, msg),
      restartBackoff: { initialMs: config.gateway.drivers.backoffBaseMs, maxMs: config.gateway.drivers.backoffMaxMs },
    });
    await plugins.scan();
    metrics.watchDrivers(drivers);
    const commands = new CommandBus(log);
    commands.on("error", (err: unknown) => logger.error({ err }, "command bus stopped following the log"));
    metrics.watchCommands(commands);
    commands.start();
    const ctx: GatewayContext = { config, log, catalog: new Catalog(config.tags), drivers, commands, pool: new EndpointPool(), metrics, logger, plugins };
    const gw = new Gateway(ctx);
    ctx.services = () => gw.started;
    gw.watchLog();
    try {
      await gw.startAll();
    } catch (e) {
      await gw.stop();
      throw e;
    }
    return gw;
  }

  /** Every log failure is one log line: consumers' errors (each retried), and the writer degrading and recovering. */
  private watchLog(): void {
    const { log, logger } = this.ctx;
    log.on("consumerError", (name: string, err: unknown) => logger.error({ err, consumer: name }, `log consumer ${name} failed; retrying`));
    log.on("degraded", (reason: string) =>
      logger.error({ reason, queued: log.queueDepth }, "event log degraded: commits fail, producers paused, retrying (see storage/README.md, 'Disk full')"),
    );
    log.on("reopen", (generation: number) => logger.warn({ generation }, "event log database reopened after DuckDB invalidated it"));
    log.on("recovered", (e: RecoveredEvent) => logger.warn({ ...e, head: log.head }, "event log recovered: commits succeed again"));
  }

  private async startServices(factories: typeof services): Promise<void> {
    for (const make of factories) {
      const svc = await make(this.ctx);
      if (!svc) continue;
      await svc.start();
      this.started.push(svc);
      this.ctx.logger.info({ service: svc.name }, "service started");
    }
  }

  private async startAll(): Promise<void> {
    const { config, drivers, logger, log } = this.ctx;
    logger.info({ dataDir: config.gateway.dataDir, head: log.head }, "event log open");
    // first: after a crash (no gateway.stopping) the alarm engine stops the quality-alarm clock here
    await this.recordLifecycle(GatewayEvent.Starting, {});
    // the previous run's Good values are only last usable ones until read again: committed before
    // drivers and bridges start, so that no bridge ever serves them as Good
    const carried = await markPreviousRunUncertain(log, this.ctx.catalog.all());
    if (carried) logger.info({ tags: carried }, "previous run's values marked Uncertain_LastUsableValue until read");
    await this.startServices(earlyServices);
    drivers.on("rejected", (id: string, tag: string, reason: string) => logger.warn({ driver: id, tag, reason }, "frame rejected"));
    // drivers rate-limit their own events (bad payloads, device exceptions), and the manager logs a
    // state change only when it is news (drivers/state-journal.ts): each one is worth a line
    drivers.on("event", (f: EventFrame) => {
      if (f.type !== "driver.state") return logger.warn({ driver: f.source, event: f.type, tag: f.tag, ...f.data }, `driver event ${f.type}`);
      const state = f.data?.state;
      logger[state === "Backoff" || state === "Fault" ? "warn" : "info"]({ driver: f.source, ...f.data }, "driver state");
    });
    for (const spec of driverSpecs(this.ctx, config).values()) drivers.add(spec.entry, spec.endpoint, spec.tags);
    // after the drivers (it writes through them), before the bridges and HTTP (they submit commands)
    this.executor = new CommandExecutor({
      log,
      drivers,
      catalog: this.ctx.catalog,
      writeTimeoutMs: config.gateway.commands.writeTimeoutMs,
      logger,
    });
    this.executor.start();
    await this.startServices(services);
    const app = createApi(this.ctx);
    app.listen({ port: config.gateway.http.port, hostname: config.gateway.http.host });
    this.http = app;
    logger.info({ host: config.gateway.http.host, port: this.httpPort }, "http listening");
    this.warnOpenDoors();
    await this.recordLifecycle(GatewayEvent.Started, {});
  }

  /**
   * `gateway.started` / `gateway.stopping` in the log (schemas/alarms.ts): the alarm engine tells a
   * planned stop from a device fault by them. Awaited (so that the drivers' Bad frames at a stop come
   * after it) but bounded: a log that cannot commit must not hold up a stop.
   */
  private async recordLifecycle(type: (typeof GatewayEvent)[keyof typeof GatewayEvent], data: Record<string, unknown>): Promise<void> {
    const { log, logger } = this.ctx;
    const appended = log.append([{ kind: "event", type, source: GATEWAY_SOURCE, ts: Date.now() * 1000, data }], { urgent: true }).then(
      () => true,
      (err: unknown) => logger.warn({ err, event: type }, "recording the gateway's lifecycle event failed"),
    );
    if ((await deadline(appended, 2000)) === TIMED_OUT) logger.warn({ event: type }, "recording the gateway's lifecycle event timed out (2 s)");
  }

  /** One warning line and one `security.open_door` event per thing the config leaves open (server/open-doors.ts). */
  private warnOpenDoors(): void {
    const ts = Date.now() * 1000;
    for (const d of openDoors(this.ctx.config)) {
      this.ctx.logger.warn({ door: d.door, fix: d.fix }, `open door: ${d.message}`);
      this.ctx.drivers.appendEvent(openDoorEvent(d, ts));
    }
  }

  /** Stops HTTP, bridges, drivers, then flushes and closes the log. Safe to call twice. `reason`: recorded in `gateway.stopping`. */
  stop(reason = "stop"): Promise<void> {
    this.stopping ??= (async () => {
      const { logger } = this.ctx;
      // open query requests would hold the HTTP stop below for their whole deadline
      await interruptQueries(this.ctx);
      await Promise.resolve(this.http?.stop()).catch(() => undefined);
      for (const svc of this.started.reverse()) {
        await svc.stop().catch((err) => logger.error({ err, service: svc.name }, "service stop failed"));
      }
      // after the bridges (the alarm engine reads it at the next start), before the drivers mark their tags Bad
      if (!this.ctx.log.isClosed) await this.recordLifecycle(GatewayEvent.Stopping, { reason });
      await this.executor?.stop();
      await this.ctx.drivers.stop();
      // after the drivers: an MQTT source decodes until it stops
      this.ctx.plugins?.stop();
      await this.ctx.commands.stop();
      await this.ctx.log.close();
      logger.info("stopped");
    })();
    return this.stopping;
  }
}
