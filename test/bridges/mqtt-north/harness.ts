// Shared pieces of the uplink tests: a log in a temp dir, the bridge on it, a subscriber that records
// what the broker delivers (with the offsets of each message), and frames to append.
import { decode } from "@msgpack/msgpack";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import pino from "pino";
import { Registry } from "prom-client";
import { createMqttNorth, type MqttNorth } from "../../../bridges/mqtt-north/index.ts";
import { Catalog } from "../../../schemas/catalog.ts";
import type { DataFrame, Variable } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import type { CommandBus } from "../../../storage/commands.ts";
import { tempDir } from "../../helpers/index.ts";

export const silent = pino({ level: process.env.EDGE_LOG_LEVEL ?? "silent" });

export function tag(name: string, tenant = "default"): Variable {
  return { tag: name, driver: "sim", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant };
}

/** The offsets a..b, both included. */
export const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

export function frames(n: number, start = 0, tags = ["a/x"]): DataFrame[] {
  const out: DataFrame[] = [];
  for (let i = 0; i < n; i++) out.push({ kind: "data", tag: tags[(start + i) % tags.length]!, value: start + i, ts: Date.now() * 1000, quality: 0, source: "sim" });
  return out;
}

export interface Rig {
  log: EventLog;
  catalog: Catalog;
  registry: Registry;
  bridge: MqttNorth;
  dir: string;
  logs: string[];
  close(): Promise<void>;
}

/** A log (on disk) and the bridge publishing from it. `logs` collects the bridge's log lines. */
export async function startRig(section: Record<string, unknown>, opts: { tags?: Variable[]; dir?: string; commands?: (log: EventLog) => CommandBus } = {}): Promise<Rig> {
  const tmp = opts.dir ? { path: opts.dir, cleanup() {} } : tempDir();
  const log = await EventLog.open({ path: `${tmp.path}/log.duckdb`, maxDelayMs: 2 });
  const catalog = new Catalog(opts.tags ?? [tag("a/x"), tag("a/y")]);
  const registry = new Registry();
  const logs: string[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void logs.push(s) });
  const bridge = createMqttNorth({ log, catalog, registry, logger, gatewayId: "gw1", section: { enabled: true, clientId: `edge-test-${crypto.randomUUID().slice(0, 8)}`, ...section }, configDir: tmp.path, commands: opts.commands?.(log) })!;
  await bridge.start();
  return {
    log,
    catalog,
    registry,
    bridge,
    dir: tmp.path,
    logs,
    async close() {
      await bridge.stop();
      await log.close();
      if (!opts.dir) tmp.cleanup();
    },
  };
}

export interface Received {
  topic: string;
  offsets: number[];
  dup: boolean;
  payload: unknown;
  userProperties: Record<string, unknown> | undefined;
  contentType: string | undefined;
}

/** A subscriber recording every message with the offsets it carries (batch or single frame). */
export async function subscriber(url: string, filter: string, opts: IClientOptions & { qos?: 0 | 1 | 2; format?: "json" | "msgpack" } = {}) {
  const got: Received[] = [];
  const client: MqttClient = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 200, ...opts });
  client.on("message", (topic, payload, packet) => {
    const body = (opts.format === "msgpack" ? decode(payload, { useBigInt64: true }) : JSON.parse(payload.toString())) as {
      frames?: { offset: number }[];
      offset?: number;
    };
    const offsets = body.frames ? body.frames.map((f) => f.offset) : body.offset !== undefined ? [body.offset] : [];
    got.push({ topic, offsets, dup: packet.dup, payload: body, userProperties: packet.properties?.userProperties, contentType: packet.properties?.contentType });
  });
  await client.subscribeAsync(filter, { qos: opts.qos ?? 1 });
  return {
    client,
    got,
    offsets: () => got.flatMap((m) => m.offsets),
    close: () => client.endAsync(true),
  };
}

export async function metric(registry: Registry, name: string): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  return m ? m.values.reduce((s, v) => s + v.value, 0) : 0;
}
