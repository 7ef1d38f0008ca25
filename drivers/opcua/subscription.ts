// One driver's subscription on the shared session: its monitored items (each creation result checked:
// a node the server refuses to monitor is reported, never left waiting for data silently) and the
// time of the server's last publish response (data or keep-alive), from which a hung server is told.
import { AttributeIds, ClientMonitoredItemGroup, TimestampsToReturn, type ClientSession, type ClientSubscription, type DataValue } from "node-opcua";
import type { OpcuaClientConfig } from "./config.ts";
import { slices } from "./limits.ts";
import type { Refusal } from "./nodes.ts";

export interface Subscribed {
  subscription: ClientSubscription;
  /** monitored items the server did not create: their tags get no values */
  refused: Refusal[];
  /** a connected server silent longer than this (no data, no keep-alive) is hung */
  silenceBoundMs: number;
  /** performance.now() of the last publish response for this subscription */
  lastHeard(): number;
}

/**
 * The silence bound: the server must answer a publish at least every publishing interval x keep-alive
 * count (as it revised them); twice that plus a second of slack for the network and the publish queue.
 */
export function silenceBoundMs(cfg: Pick<OpcuaClientConfig, "silenceTimeoutMs">, publishingIntervalMs: number, keepAliveCount: number): number {
  return cfg.silenceTimeoutMs ?? 2 * publishingIntervalMs * keepAliveCount + 1000;
}

/** Poll mode: a server that answers no read for two endpoint timeouts and a second is hung. */
export function pollSilenceBoundMs(cfg: Pick<OpcuaClientConfig, "silenceTimeoutMs">, timeoutMs: number): number {
  return cfg.silenceTimeoutMs ?? 2 * timeoutMs + 1000;
}

/**
 * Creates the subscription and monitors `nodeIds`, at most `monitoredItemsPerCall` per call (the
 * server's limit); `onChange(index, dv)` gets every change, `index` into `nodeIds`.
 */
export async function subscribe(
  session: ClientSession,
  cfg: OpcuaClientConfig,
  nodeIds: readonly string[],
  monitoredItemsPerCall: number,
  onChange: (index: number, dv: DataValue) => void,
): Promise<Subscribed> {
  const subscription = await session.createSubscription2({
    requestedPublishingInterval: cfg.publishingIntervalMs,
    requestedLifetimeCount: Math.max(1000, cfg.keepAliveCount * 3),
    requestedMaxKeepAliveCount: cfg.keepAliveCount,
    maxNotificationsPerPublish: 0,
    publishingEnabled: true,
    priority: 1,
  });
  let heard = performance.now();
  // every publish response for this subscription, data or keep-alive
  subscription.on("raw_notification", () => (heard = performance.now()));
  const refused: Refusal[] = [];
  // one CreateMonitoredItems call per slice of the server's limit: one past it is refused whole
  for (const slice of slices(nodeIds, monitoredItemsPerCall)) {
    const group = ClientMonitoredItemGroup.create(
      subscription,
      slice.items.map((nodeId) => ({ nodeId, attributeId: AttributeIds.Value })),
      { samplingInterval: cfg.samplingIntervalMs, queueSize: cfg.queueSize, discardOldest: true },
      TimestampsToReturn.Both,
    );
    group.on("changed", (_item: unknown, dv: DataValue, index: number) => onChange(slice.offset + index, dv));
    await new Promise<void>((resolve, reject) => {
      group.once("initialized", () => resolve());
      group.once("err", (e: unknown) => reject(new Error(`monitored items refused: ${String(e)}`)));
    });
    // creating many items can keep the server from publishing meanwhile: silence counts from here
    heard = performance.now();
    group.monitoredItems.forEach((item, index) => {
      const sc = item.statusCode;
      if (sc && !sc.isGood()) refused.push({ index: slice.offset + index, quality: sc.value >>> 0, reason: `the server refused to monitor node ${nodeIds[slice.offset + index]} (${sc.name})` });
    });
  }
  return {
    subscription,
    refused,
    silenceBoundMs: silenceBoundMs(cfg, subscription.publishingInterval, subscription.maxKeepAliveCount),
    lastHeard: () => heard,
  };
}
