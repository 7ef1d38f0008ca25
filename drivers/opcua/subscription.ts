// One driver's subscription on the shared session: its monitored items (each creation result checked:
// a node the server refuses to monitor is reported, never left waiting for data silently) and the
// time of the server's last publish response (data or keep-alive), from which a hung server is told.
// Setting up a large subscription is bounded in two steps, each scaled to its size: every
// CreateMonitoredItems call must be answered within the silence bound plus an allowance per item, and
// the server's first publish after the items exist within the silence bound plus twice the time the
// creation took (a server that took long to create the items takes long to sample and send them
// all once); from that first publish on, the silence bound alone applies. A call that node-opcua's own
// request timeout ends first (at least 5 s, or 10 x the endpoint's timeoutMs) is a silent server too.
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  CreateMonitoredItemsRequest,
  CreateSubscriptionRequest,
  TimestampsToReturn,
  type ClientSession,
  type ClientSubscription,
  type DataValue,
  type OPCUAClient,
} from "node-opcua";
import { ABORTED, TIMED_OUT, deadline } from "../../storage/time.ts";
import type { OpcuaClientConfig } from "./config.ts";
import { slices } from "./limits.ts";
import type { Refusal } from "./nodes.ts";

/** The server did not answer the subscription's set-up in time: it is taken as hung. */
export class SubscribeTimeoutError extends Error {
  override name = "SubscribeTimeoutError";
}

/**
 * Allowance per monitored item in one CreateMonitoredItems call, on top of the silence bound: node-opcua's
 * server takes ~0.05 ms an item on a quiet machine (10,000 in 445 ms, 7,783 in 753 ms), so 1 ms leaves a
 * twentyfold margin for a loaded one (10,000 items: the silence bound + 10 s).
 */
export const CREATE_MS_PER_ITEM = 1;

export interface Subscribed {
  subscription: ClientSubscription;
  /** monitored items the server did not create: their tags get no values */
  refused: Refusal[];
  /** a connected server silent longer than this (no data, no keep-alive) is hung, once it has published after the creation */
  silenceBoundMs: number;
  /** until the first publish after the items were created (or restored), the bound is this instead */
  firstPublishBoundMs: number;
  /** how long the subscription and its monitored items took to create */
  createdInMs: number;
  /** performance.now() of the last publish response for this subscription (the end of the creation before the first) */
  lastHeard(): number;
  /** true until the first publish response after the creation (or after `awaitFirstPublish`) */
  awaitingFirstPublish(): boolean;
  /** the bound that applies now: `firstPublishBoundMs` while awaiting the first publish, else `silenceBoundMs` */
  boundMs(): number;
  /** counts silence from now with the first-publish bound (the session was restored: node-opcua may recreate the items) */
  awaitFirstPublish(): void;
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

/** How long one CreateMonitoredItems call of `items` items may take before the server is taken as hung. */
export function createCallBoundMs(silenceMs: number, items: number): number {
  return silenceMs + items * CREATE_MS_PER_ITEM;
}

/** How long after the creation the server's first publish may take: the silence bound plus twice the creation's time. */
export function firstPublishBoundMs(silenceMs: number, createdInMs: number): number {
  return silenceMs + 2 * Math.ceil(createdInMs);
}

type RequestClass = typeof CreateSubscriptionRequest | typeof CreateMonitoredItemsRequest;

/**
 * The set-up's requests that node-opcua's own request timeout ended, told by the client's public
 * `timed_out_request` event: the call itself fails with a plain Error whose text is all that tells a
 * timeout apart (and a monitored-item group passes on only that text). node-opcua emits the event right
 * after failing the call, in the same turn, so it is known when the failure is handled.
 */
class RequestTimeouts {
  /** the timeout (ms) of the last request of each class that timed out */
  private readonly timedOut = new Map<RequestClass, number>();
  private readonly onTimedOut = (request: unknown) => {
    for (const kind of [CreateSubscriptionRequest, CreateMonitoredItemsRequest]) {
      if (request instanceof kind) this.timedOut.set(kind, request.requestHeader.timeoutHint);
    }
  };

  constructor(private readonly client: OPCUAClient) {
    client.on("timed_out_request", this.onTimedOut);
  }

  /** The timeout with which node-opcua ended a request of `kind` since the watch began, or null. */
  of(kind: RequestClass): number | null {
    return this.timedOut.get(kind) ?? null;
  }

  stop(): void {
    this.client.off("timed_out_request", this.onTimedOut);
  }
}

/**
 * `p` within `ms`, or a SubscribeTimeoutError saying what went unanswered: past `ms`, or past node-opcua's
 * request timeout for a request of `kind` (the same silent server, the shorter of the two bounds).
 */
async function answered<T>(p: Promise<T>, ms: number, what: string, timeouts: { watch: RequestTimeouts; kind: RequestClass }, signal?: AbortSignal): Promise<T> {
  p.catch(() => undefined); // a failure after the deadline or the abort has no one left to hear it
  let r: Awaited<ReturnType<typeof deadline<T>>>;
  try {
    r = await deadline(p, ms, signal);
  } catch (cause) {
    const requestTimeoutMs = timeouts.watch.of(timeouts.kind);
    if (requestTimeoutMs !== null) throw new SubscribeTimeoutError(`no answer to ${what} within ${requestTimeoutMs} ms (the client's request timeout)`, { cause });
    throw cause;
  }
  if (r === ABORTED) throw new Error(`subscribing aborted (${what})`);
  if (r === TIMED_OUT) throw new SubscribeTimeoutError(`no answer to ${what} within ${ms} ms`);
  return r;
}

/**
 * Creates the subscription on `on.session` (of `on.client`) and monitors `nodeIds`, at most
 * `monitoredItemsPerCall` per call (the server's limit); `onChange(index, dv)` gets every change, `index`
 * into `nodeIds`. A call the server leaves unanswered past its bound, or past node-opcua's request
 * timeout, rejects with SubscribeTimeoutError.
 */
export async function subscribe(
  on: { session: ClientSession; client: OPCUAClient },
  cfg: OpcuaClientConfig,
  nodeIds: readonly string[],
  monitoredItemsPerCall: number,
  onChange: (index: number, dv: DataValue) => void,
  signal?: AbortSignal,
): Promise<Subscribed> {
  const watch = new RequestTimeouts(on.client);
  try {
    return await setUp(on.session, cfg, nodeIds, monitoredItemsPerCall, onChange, watch, signal);
  } finally {
    watch.stop();
  }
}

async function setUp(
  session: ClientSession,
  cfg: OpcuaClientConfig,
  nodeIds: readonly string[],
  monitoredItemsPerCall: number,
  onChange: (index: number, dv: DataValue) => void,
  watch: RequestTimeouts,
  signal?: AbortSignal,
): Promise<Subscribed> {
  const startedAt = performance.now();
  const requestedBound = silenceBoundMs(cfg, cfg.publishingIntervalMs, cfg.keepAliveCount);
  const subscription = await answered(
    session.createSubscription2({
      requestedPublishingInterval: cfg.publishingIntervalMs,
      requestedLifetimeCount: Math.max(1000, cfg.keepAliveCount * 3),
      requestedMaxKeepAliveCount: cfg.keepAliveCount,
      maxNotificationsPerPublish: 0,
      publishingEnabled: true,
      priority: 1,
    }),
    requestedBound,
    "CreateSubscription",
    { watch, kind: CreateSubscriptionRequest },
    signal,
  );
  const bound = silenceBoundMs(cfg, subscription.publishingInterval, subscription.maxKeepAliveCount);
  let heard = performance.now();
  /** null while the items are being created; then true until the first publish response after it */
  let awaiting: boolean | null = null;
  // every publish response for this subscription, data or keep-alive
  subscription.on("raw_notification", () => {
    heard = performance.now();
    if (awaiting) awaiting = false;
  });
  const refused: Refusal[] = [];
  // one CreateMonitoredItems call per slice of the server's limit: one past it is refused whole
  const all = slices(nodeIds, monitoredItemsPerCall);
  for (const [call, slice] of all.entries()) {
    const group = ClientMonitoredItemGroup.create(
      subscription,
      slice.items.map((nodeId) => ({ nodeId, attributeId: AttributeIds.Value })),
      { samplingInterval: cfg.samplingIntervalMs, queueSize: cfg.queueSize, discardOldest: true },
      TimestampsToReturn.Both,
    );
    group.on("changed", (_item: unknown, dv: DataValue, index: number) => onChange(slice.offset + index, dv));
    const initialized = new Promise<void>((resolve, reject) => {
      group.once("initialized", () => resolve());
      group.once("err", (e: unknown) => reject(new Error(`monitored items refused: ${String(e)}`)));
    });
    const what = `CreateMonitoredItems (${slice.items.length} items, call ${call + 1} of ${all.length})`;
    await answered(initialized, createCallBoundMs(bound, slice.items.length), what, { watch, kind: CreateMonitoredItemsRequest }, signal);
    group.monitoredItems.forEach((item, index) => {
      const sc = item.statusCode;
      if (sc && !sc.isGood()) refused.push({ index: slice.offset + index, quality: sc.value >>> 0, reason: `the server refused to monitor node ${nodeIds[slice.offset + index]} (${sc.name})` });
    });
  }
  // silence counts from the end of the creation, with the first-publish bound until the server publishes
  heard = performance.now();
  awaiting = true;
  const createdInMs = heard - startedAt;
  const firstBound = firstPublishBoundMs(bound, createdInMs);
  return {
    subscription,
    refused,
    silenceBoundMs: bound,
    firstPublishBoundMs: firstBound,
    createdInMs,
    lastHeard: () => heard,
    awaitingFirstPublish: () => awaiting === true,
    boundMs: () => (awaiting ? firstBound : bound),
    awaitFirstPublish: () => {
      heard = performance.now();
      awaiting = true;
    },
  };
}
