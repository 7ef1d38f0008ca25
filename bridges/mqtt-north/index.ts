// The MQTT uplink (mqtt-north): a consumer of the log with its own cursor that publishes data frames to
// an MQTT 5 (or 3.1.1) broker with store and forward, a retained birth/last-will status per gateway, and
// (optionally) MQTT commands on {tenant}/cmd/{tag}. See README "MQTT uplink" for topics and payloads.
// TLS certificate files are read again before every reconnect (a fixed file is used at the next try, at
// once when it changes while the uplink waits to reconnect; a refusing broker is tried every 2 s at most)
// and every second while connected (files that became unusable keep /readyz degraded until they are
// good again); a failed handshake is logged and shown in /readyz naming the certificate and why
// (storage/tls.ts). A throw while opening a connection does not stop reconnecting (connect.ts).
import { join } from "node:path";
import type { IClientOptions, MqttClient } from "mqtt";
import type { Registry } from "prom-client";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import { ConfigError } from "../../schemas/errors.ts";
import { redactUrl } from "../../schemas/redact.ts";
import type { CommandBus } from "../../storage/commands.ts";
import type { EventLog } from "../../storage/log.ts";
import type { PublishingBridge } from "../../storage/window-publisher.ts";
import { explainTlsError, isTlsError, readTlsMaterial, resolveTlsFiles, TlsHandshakeError, type TlsMaterial } from "../../storage/tls.ts";
import { filesChanged } from "../../storage/watch.ts";
import type { TlsFiles } from "../../schemas/tls.ts";
import { parseMqttNorthConfig, type MqttNorthConfig } from "./config.ts";
import { UplinkMetrics } from "./metrics.ts";
import { fillTopic } from "./topics.ts";
import { Publisher } from "./publisher.ts";
import { startMqttCommands, type CommandAuthorizer } from "./commands.ts";
import { connectGuarded } from "./connect.ts";
import { uplinkStatus, type UplinkStatus } from "./status.ts";

export { parseMqttNorthConfig, MqttNorthConfig } from "./config.ts";
export type { CommandAuthorizer, CommandAuthorization } from "./commands.ts";

export interface MqttNorthDeps {
  log: EventLog;
  catalog: Catalog;
  registry: Registry;
  logger: Logger;
  gatewayId: string;
  /** the raw `mqtt:` section of gateway.yml */
  section: unknown;
  /** directory that relative ca/cert/key paths start from */
  configDir: string;
  /** file named in config errors */
  file?: string;
  commands?: CommandBus;
  /** checks a command's JWT as REST does (server/services.ts); absent: JWT commands are refused */
  authorizeCommand?: CommandAuthorizer;
}

export interface MqttNorth extends PublishingBridge<Publisher, UplinkStatus> {
  readonly client: MqttClient | null;
}

/** The uplink's certificate files, absolute. */
function tlsFilesOf(cfg: MqttNorthConfig, dir: string): TlsFiles {
  const t: TlsFiles = { rejectUnauthorized: cfg.rejectUnauthorized };
  for (const k of ["ca", "cert", "key"] as const) if (cfg[k]) t[k] = cfg[k];
  return resolveTlsFiles(t, dir);
}

/**
 * The files' contents; an unreadable file at creation is a ConfigError naming the field. An expired
 * client certificate is not: it is a connection problem (told at every try) that a new file fixes.
 */
function readTlsAtStart(t: TlsFiles, file: string): TlsMaterial {
  try {
    return readTlsMaterial(t, null); // the client certificate's validity is checked at every reconnect
  } catch (e) {
    if (e instanceof TlsHandshakeError) throw new ConfigError(file, `mqtt.${e.field ?? "cert"}`, e.message);
    throw e;
  }
}

/** host:port of a broker URL (for TLS messages). */
function brokerAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === "mqtts:" ? 8883 : 1883)}`;
  } catch {
    return url;
  }
}

/** How long stop() waits for in-flight messages to be acknowledged before it closes the connection. */
const STOP_DRAIN_MS = 2000;

/**
 * The longest wait between attempts while the broker refuses connections: a refused connect costs the
 * broker nothing (as the drivers' port probe, drivers/reachable.ts, every 2 s). The backoff up to
 * reconnectMaxMs stays for failures above TCP (TLS, credentials), which cost it a handshake each.
 */
export const REFUSED_RETRY_MS = 2000;
/** A broker refusing connections for hours: one log line a minute, not one per attempt. */
const REFUSAL_LOG_EVERY_MS = 60_000;

/** Whether two TLS options (PEM buffers or strings, absent) hold the same bytes. */
function sameBytes(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return Buffer.from(a as Buffer).equals(Buffer.from(b as Buffer));
}

/** Why a connection failed, in a word for the metric label. */
function connectReason(err: Error & { code?: unknown }): string {
  if (typeof err.code === "number") return `refused_${err.code}`;
  if (typeof err.code === "string") return err.code.toLowerCase();
  return "error";
}

/** Creates the bridge, or null when `mqtt.enabled` is false. Validates the section (ConfigError). */
export function createMqttNorth(deps: MqttNorthDeps): MqttNorth | null {
  const file = deps.file ?? join(deps.configDir, "gateway.yml");
  const cfg = parseMqttNorthConfig(deps.section, file);
  const brokerUrl = redactUrl(cfg.url); // for log lines and /readyz: the URL may carry user:password@
  if (!cfg.enabled) return null;
  const tlsFiles = tlsFilesOf(cfg, deps.configDir);
  const tls = readTlsAtStart(tlsFiles, file);
  /** why the last connection attempt failed (null once connected) */
  let connectError: string | null = null;
  /** why the certificate files on disk cannot be used (the client keeps the ones read before); null: usable */
  let tlsFilesProblem: string | null = null;
  const logger = deps.logger.child({ bridge: "mqtt-north" });
  const metrics = new UplinkMetrics(deps.registry);
  const publisher = new Publisher({ log: deps.log, catalog: deps.catalog, logger, metrics, gatewayId: deps.gatewayId, config: cfg });
  const statusTopic = fillTopic(cfg.statusTopic, { device: deps.gatewayId });
  const status = (s: "online" | "offline") => JSON.stringify({ status: s, gatewayId: deps.gatewayId, ts: Date.now() * 1000 });
  let client: MqttClient | null = null;
  /** when the connection last came or went (ms since the epoch) */
  let connectionSince = Date.now();
  let gaugeTimer: ReturnType<typeof setInterval> | null = null;
  /** the wait for a certificate fix on disk while disconnected; ended when an attempt starts or the bridge stops */
  let fixWatch: AbortController | null = null;
  const endFixWatch = () => {
    fixWatch?.abort();
    fixWatch = null;
  };
  let commands: { stop(): Promise<void> } | null = null;

  const updateGauges = () => {
    const lag = publisher.lag();
    metrics.lag.set({ consumer: cfg.cursor }, lag.frames);
    metrics.lagSeconds.set({ consumer: cfg.cursor }, lag.seconds);
    metrics.connected.set(client?.connected ? 1 : 0);
  };

  /**
   * Reads the certificate files again into the client's options (used at the next connection); a file
   * problem is told once when it appears (and when it changes), kept for /readyz, and the old ones kept.
   */
  const refreshTls = (c: MqttClient) => {
    try {
      Object.assign(c.options, readTlsMaterial(tlsFiles));
      if (tlsFilesProblem) logger.info({ url: brokerUrl }, "mqtt uplink: the certificate files on disk are usable again");
      tlsFilesProblem = null;
    } catch (e) {
      const why = (e as Error).message;
      if (why !== tlsFilesProblem) logger.error({ url: brokerUrl }, `mqtt uplink: ${why}; retrying with the certificates read before`);
      tlsFilesProblem = why;
    }
  };

  const bridge: MqttNorth = {
    name: "mqtt-north",
    publisher,
    get client() {
      return client;
    },
    status: () => uplinkStatus({ connected: client?.connected ?? false, connectionSince, consumer: publisher.status(), inflight: publisher.inflight, url: brokerUrl, connectError, tlsFilesProblem }),
    async start() {
      const opts: IClientOptions = {
        protocolVersion: cfg.protocolVersion,
        clientId: cfg.clientId ?? `edge-${deps.gatewayId}`,
        username: cfg.username,
        password: cfg.password,
        ...tls,
        rejectUnauthorized: cfg.rejectUnauthorized,
        // a persistent session: the broker keeps QoS 1/2 state across reconnects, so resends are recognised
        clean: false,
        keepalive: cfg.keepaliveSec,
        reconnectPeriod: cfg.reconnectMinMs,
        connectTimeout: 10_000,
        reconnectOnConnackError: true,
        // never buffer QoS 0 offline: we do not publish while disconnected, and the log is the buffer
        queueQoSZero: false,
        resubscribe: true,
        will: { topic: statusTopic, payload: Buffer.from(status("offline")), qos: 1, retain: true },
        ...(cfg.protocolVersion === 5 ? { properties: { sessionExpiryInterval: cfg.sessionExpirySec } } : {}),
      };
      client = connectGuarded(cfg.url, opts);
      const c = client;
      const isTls = c.options.protocol === "mqtts";
      let wasConnected = false;
      let failures = 0;
      /** the error of the attempt under way (null: none yet) */
      let attemptError: (Error & { code?: unknown }) | null = null;
      /** when a refusal was last logged, and how many came since */
      let refusalLoggedAt = 0;
      let refusalsUnlogged = 0;
      const tlsPaths = [tlsFiles.ca, tlsFiles.cert, tlsFiles.key].filter((f): f is string => !!f);
      c.on("reconnect", () => {
        attemptError = null;
        endFixWatch();
      });
      c.on("connect", (ack) => {
        wasConnected = true;
        connectionSince = Date.now();
        connectError = null;
        failures = 0;
        refusalLoggedAt = 0;
        refusalsUnlogged = 0;
        c.options.reconnectPeriod = cfg.reconnectMinMs;
        logger.info({ url: brokerUrl, sessionPresent: ack.sessionPresent, cursor: publisher.acked }, "mqtt uplink connected");
        c.publish(statusTopic, status("online"), { qos: 1, retain: true }, () => undefined);
        updateGauges();
        publisher.notify();
      });
      c.on("close", () => {
        if (wasConnected) {
          logger.warn({ url: brokerUrl, cursor: publisher.acked }, "mqtt uplink disconnected; frames wait in the log");
          connectionSince = Date.now();
        }
        wasConnected = false;
        // backoff: 0.5 s, 1 s, 2 s ... capped; reset on connect. A broker that refuses connections (stopped,
        // restarting) is tried every REFUSED_RETRY_MS at most: with the backoff alone, a broker back after a
        // minute's outage was used up to reconnectMaxMs (30 s) later (measured from outside: 22 s)
        const backoff = Math.min(cfg.reconnectMaxMs, cfg.reconnectMinMs * 2 ** Math.min(failures++, 20));
        const refused = (attemptError as { code?: unknown } | null)?.code === "ECONNREFUSED";
        c.options.reconnectPeriod = refused ? Math.min(backoff, Math.max(REFUSED_RETRY_MS, cfg.reconnectMinMs)) : backoff;
        attemptError = null;
        // mqtt.js builds the next TLS socket from c.options: a certificate fixed on disk is used at the next try
        if (isTls) {
          const used = { ca: c.options.ca, cert: c.options.cert, key: c.options.key };
          refreshTls(c);
          // ... and a fix on disk starts that try now, not after the backoff (a CA corrected after a minute
          // of handshake failures was used 22 s later): the same as the drivers' waitToRetry (drivers/manager.ts).
          // Files that changed while the failed attempt ran count too (they were read before it).
          endFixWatch();
          const watch = (fixWatch = new AbortController());
          const changed = !sameBytes(used.ca, c.options.ca) || !sameBytes(used.cert, c.options.cert) || !sameBytes(used.key, c.options.key);
          void (changed ? Promise.resolve() : filesChanged(tlsPaths, watch.signal)).then(() => {
            if (watch.signal.aborted || c.connected || c.disconnecting) return;
            fixWatch = null;
            logger.info({ url: brokerUrl }, "mqtt uplink: certificate files changed on disk; connecting again now");
            refreshTls(c); // the attempt is built from c.options: the files as they are now
            // the same stores: the persistent session's in-flight window is sent again as after any reconnect
            c.reconnect({ incomingStore: c.incomingStore, outgoingStore: c.outgoingStore });
          });
        }
        updateGauges();
      });
      /** mqtt.js emits a failed TLS socket's error twice (its TLS error handler and its stream's) */
      let lastError: Error | null = null;
      c.on("error", (err: Error & { code?: unknown }) => {
        if (err === lastError) return;
        lastError = err;
        attemptError = err;
        if (err.code === undefined && /reason code/i.test(err.message)) publisher.refuseOldest(err.message);
        metrics.connectErrors.inc({ reason: connectReason(err) });
        const why = isTlsError(err) ? explainTlsError(err, brokerAddress(cfg.url), tlsFiles).message : err.message;
        if (!c.connected) connectError = why;
        // a refusing broker is tried every 2 s: its refusals are logged once a minute (counted every time)
        if (err.code === "ECONNREFUSED") {
          if (Date.now() - refusalLoggedAt < REFUSAL_LOG_EVERY_MS) return void refusalsUnlogged++;
          const more = refusalsUnlogged ? ` (${refusalsUnlogged} more refusals since the last line)` : "";
          refusalLoggedAt = Date.now();
          refusalsUnlogged = 0;
          return logger.error({ url: brokerUrl, code: err.code, cursor: publisher.acked }, `mqtt uplink: connection to ${brokerUrl} failed: ${why}${more}; cursor kept, retrying every ${REFUSED_RETRY_MS / 1000} s`);
        }
        logger.error({ url: brokerUrl, code: err.code, cursor: publisher.acked }, `mqtt uplink: connection to ${brokerUrl} failed: ${why}; cursor kept, retrying`);
      });
      publisher.start(c);
      gaugeTimer = setInterval(() => {
        updateGauges();
        // while connected nothing else reads the files: a renewal gone wrong must not wait for a reconnect to show
        if (isTls && c.connected) refreshTls(c);
      }, 1000);
      if (cfg.commands.enabled) {
        if (!deps.commands) {
          logger.warn("mqtt commands enabled but the gateway has no command bus; commands are not subscribed");
        } else {
          commands = startMqttCommands({ client: c, config: cfg, catalog: deps.catalog, bus: deps.commands, logger, metrics, gatewayId: deps.gatewayId, ...(deps.authorizeCommand ? { authorize: deps.authorizeCommand } : {}) });
        }
      }
    },
    async stop() {
      if (gaugeTimer) clearInterval(gaugeTimer);
      endFixWatch();
      await commands?.stop();
      // publish nothing more, let the broker acknowledge what is in flight, store that as the cursor
      await publisher.stop(STOP_DRAIN_MS);
      const c = client;
      if (c) {
        if (c.connected) await c.publishAsync(statusTopic, status("offline"), { qos: 1, retain: true }).catch(() => undefined);
        await c.endAsync(true).catch(() => undefined);
      }
    },
  };
  return bridge;
}
