// Shared setup of the NATS bridge tests: a log in a temp dir, the bridge on it, frames to append.
import pino from "pino";
import { Registry } from "prom-client";
import { createNatsBridge, type NatsBridge } from "../../../bridges/nats/index.ts";
import { Catalog } from "../../../schemas/catalog.ts";
import type { DataFrame } from "../../../schemas/frames.ts";
import { EventLog } from "../../../storage/index.ts";

/** The bridge's config for tests: short retries and timeouts, a stream provisioned at start. */
export function natsSection(servers: string[], over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    enabled: true,
    servers,
    stream: "EDGE",
    retryMinMs: 50,
    retryMaxMs: 500,
    ackTimeoutMs: 1000,
    commitEveryMs: 20,
    batch: { maxFrames: 200, maxDelayMs: 2 },
    streamConfig: { provision: true, duplicateWindowSec: 600 },
    ...over,
  };
}

export function makeBridge(log: EventLog, servers: string[], over: Record<string, unknown> = {}, gatewayId = "gw-1"): NatsBridge {
  const bridge = createNatsBridge({ log, catalog: new Catalog(), registry: new Registry(), logger: pino({ level: "silent" }), gatewayId, section: natsSection(servers, over) });
  if (!bridge) throw new Error("the bridge is enabled in natsSection");
  return bridge;
}

/** n data frames on tags like `line1/press/t<k mod 10>` (a '/' in the tag is the usual case). */
export function frames(n: number, from = 0): DataFrame[] {
  const out: DataFrame[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = { kind: "data", tag: `line1/press/t${(from + i) % 10}`, value: from + i, ts: from + i, quality: 0, source: "test" };
  return out;
}

export async function openLog(path: string): Promise<EventLog> {
  return await EventLog.open({ path, tailFrames: 10_000, maxDelayMs: 2 });
}
