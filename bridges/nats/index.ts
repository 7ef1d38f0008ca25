// The NATS JetStream bridge: a consumer of the log with its own cursor that mirrors data frames into a
// JetStream stream, every offset exactly once (see publisher.ts and README.md), and with nats.commands
// takes commands from the fleet (commands.ts). Off unless `nats.enabled`.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { Registry } from "prom-client";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import type { CommandAuthorizer } from "../../schemas/command-message.ts";
import type { CommandBus } from "../../storage/commands.ts";
import type { EventLog } from "../../storage/log.ts";
import { delay, backoffDelay } from "../../storage/time.ts";
import type { PublishingBridge } from "../../storage/window-publisher.ts";
import { parseNatsConfig, type NatsConfig } from "./config.ts";
import { NatsMetrics } from "./metrics.ts";
import { startNatsCommands, type NatsCommands } from "./commands.ts";
import { provisionCommands, provisionStream } from "./provision.ts";
import { NatsPublisher } from "./publisher.ts";
import { natsStatus, type NatsStatus } from "./status.ts";

export { parseNatsConfig, type NatsConfig } from "./config.ts";
export { provisionCommands, provisionStream } from "./provision.ts";

export interface NatsBridgeDeps {
  log: EventLog;
  catalog: Catalog;
  registry: Registry;
  logger: Logger;
  gatewayId: string;
  /** the raw `nats:` section of gateway.yml */
  section: unknown;
  file?: string;
  /** the command bus (needed with nats.commands.enabled) */
  commands?: CommandBus;
  /** checks a command's JWT as REST does (server/services.ts); absent: every command is refused */
  authorizeCommand?: CommandAuthorizer;
}

export type NatsBridge = PublishingBridge<NatsPublisher, NatsStatus>;

const STOP_DRAIN_MS = 2000;

/**
 * Connects to the cluster. The bridge never gives up (the log buffers meanwhile); a one-shot command
 * (edgectl) passes `once` and gets an error when no server answers.
 */
export function natsConnect(cfg: NatsConfig, name: string, once = false): Promise<NatsConnection> {
  return connect({
    servers: cfg.servers,
    name,
    ...(cfg.user !== undefined ? { user: cfg.user, pass: cfg.pass } : {}),
    ...(cfg.token !== undefined ? { token: cfg.token } : {}),
    maxReconnectAttempts: once ? 0 : -1,
    reconnectTimeWait: cfg.retryMinMs,
    waitOnFirstConnect: !once,
    timeout: once ? 5000 : 2000,
  });
}

/**
 * `edgectl nats provision`: creates or checks the stream of a gateway's `nats:` section, and with
 * nats.commands.enabled the command stream and the gateway's consumer; one line each.
 */
export async function provisionCommand(section: unknown, file: string, gatewayId: string): Promise<string> {
  const cfg = parseNatsConfig(section, file);
  const nc = await natsConnect(cfg, "edgectl", true);
  try {
    const jsm = await jetstreamManager(nc);
    const r = await provisionStream(jsm, cfg);
    const s = cfg.streamConfig;
    const lines = [`${r.action}: stream ${r.stream} on ${cfg.servers.join(",")}, subjects ${r.subjects.join(" ")}, replicas ${s.replicas}, max age ${s.maxAgeSec} s, max bytes ${s.maxBytes}, duplicate window ${s.duplicateWindowSec} s`];
    if (cfg.commands.enabled) {
      const c = await provisionCommands(jsm, cfg, gatewayId);
      lines.push(`${c.stream.action}: command stream ${c.stream.stream}, subjects ${c.stream.subjects.join(" ")}, max age ${cfg.commands.maxAgeSec} s`);
      lines.push(`${c.consumer.action}: command consumer ${c.consumer.name} on ${c.consumer.filter}, ack wait ${cfg.commands.ackWaitMs} ms, max ack pending ${cfg.commands.maxAckPending}`);
    }
    return lines.join("\n");
  } finally {
    await nc.close();
  }
}

/** Creates the bridge, or null when `nats.enabled` is false. Validates the section (ConfigError). */
export function createNatsBridge(deps: NatsBridgeDeps): NatsBridge | null {
  const cfg = parseNatsConfig(deps.section, deps.file ?? "gateway.yml");
  if (!cfg.enabled) return null;
  if (cfg.commands.enabled && !deps.commands) throw new Error("nats.commands.enabled needs the command bus (a wiring error)");
  const logger = deps.logger.child({ bridge: "nats" });
  const metrics = new NatsMetrics(deps.registry);
  const publisher = new NatsPublisher({ log: deps.log, catalog: deps.catalog, logger, metrics, gatewayId: deps.gatewayId, config: cfg });
  let nc: NatsConnection | null = null;
  let js: JetStreamClient | null = null;
  let connected = false;
  let connectionSince = Date.now();
  let gaugeTimer: ReturnType<typeof setInterval> | null = null;
  let commands: NatsCommands | null = null;
  const stopping = new AbortController();

  const updateGauges = () => {
    const lag = publisher.lag();
    metrics.lag.set({ consumer: cfg.cursor }, lag.frames);
    metrics.lagSeconds.set({ consumer: cfg.cursor }, lag.seconds);
    metrics.connected.set(connected ? 1 : 0);
  };

  const watch = async (c: NatsConnection) => {
    for await (const s of c.status()) {
      if (s.type === "disconnect" || s.type === "reconnect") {
        connected = s.type === "reconnect";
        connectionSince = Date.now();
        logger.warn({ event: s.type, cursor: publisher.acked }, `nats bridge: ${s.type === "reconnect" ? "reconnected" : "disconnected; frames wait in the log"}`);
        publisher.notify();
      }
    }
  };

  /** Connects in the background (retrying), provisions the stream when asked, then lets the publisher publish. */
  const link = async () => {
    for (let attempt = 0; !stopping.signal.aborted; attempt++) {
      try {
        const c = await natsConnect(cfg, `edge-${deps.gatewayId}`);
        if (stopping.signal.aborted) return void (await c.close());
        const m = await jetstreamManager(c, { checkAPI: false });
        if (cfg.streamConfig.provision) logger.info(await provisionStream(m, cfg), "nats bridge: stream provisioned");
        if (cfg.streamConfig.provision && cfg.commands.enabled) logger.info(await provisionCommands(m, cfg, deps.gatewayId), "nats bridge: command stream and consumer provisioned");
        nc = c;
        js = jetstream(c);
        connected = true;
        connectionSince = Date.now();
        void watch(c);
        publisher.notify();
        return;
      } catch (e) {
        logger.error({ err: (e as Error).message, servers: cfg.servers }, "nats bridge: cannot connect or provision; retrying");
        await delay(backoffDelay(attempt + 1, { initialMs: cfg.retryMinMs, maxMs: cfg.retryMaxMs }), stopping.signal);
      }
    }
  };

  return {
    name: "nats",
    publisher,
    status: () => natsStatus({ connected, connectionSince, consumer: publisher.status(), inflight: publisher.inflight, servers: cfg.servers.join(","), commands: commands?.problem() ?? null }),
    async start() {
      void link();
      publisher.start({ nc: () => nc, js: () => js });
      // checked above: the bus is there when commands are enabled
      if (cfg.commands.enabled) commands = startNatsCommands({ config: cfg, catalog: deps.catalog, bus: deps.commands!, logger, metrics, gatewayId: deps.gatewayId, js: () => js, ...(deps.authorizeCommand ? { authorize: deps.authorizeCommand } : {}) });
      gaugeTimer = setInterval(updateGauges, 1000);
    },
    async stop() {
      stopping.abort();
      if (gaugeTimer) clearInterval(gaugeTimer);
      await commands?.stop();
      await publisher.stop(STOP_DRAIN_MS);
      await nc?.close().catch(() => undefined);
    },
  };
}
