// The OPC UA client driver: reads nodes of an external OPC UA server into tags, by subscription
// (monitored items, the server reports changes) or by polling, and writes commands back. Drivers on
// one server with the same security settings and user share one client session (session.ts, through
// the endpoint pool), each with its own subscription. node-opcua reconnects after a connection loss
// and restores the session and subscriptions; meanwhile the tags are Bad_NotConnected. A server that
// keeps its connection but stops answering (hung) is told by its silence: no publish response
// (subscription) or no answer to a read (poll) within the silence bound makes every tag Bad_Timeout
// and ends the read loop, after dropping the shared session, so that the driver reconnects. A poll
// read unanswered within the endpoint's timeout makes its group Bad_Timeout at once.
// At connect each node's DataType is checked against its tag's type (nodes.ts): a tag that does not
// fit is refused with a Bad quality and an event naming it, as is a node the server will not monitor
// (the event once per refusal, not at every restart: refusal-events.ts).
import { AttributeIds, resolveNodeId, type ClientSubscription, type DataValue } from "node-opcua";
import type { CmdFrame, DataFrame, Variable } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";
import { ABORTED, TIMED_OUT, deadline, settlesWithin } from "../../storage/time.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink, type WriteResult } from "../contract.ts";
import type { Endpoint, Lease } from "../endpoint.ts";
import { DriverConfigError, DriverError } from "../errors.ts";
import { parseDriverConfig } from "../validate.ts";
import { OpcuaClientConfig } from "./config.ts";
import { clientPkiDir, explainConnectError, openSession, sessionKey, type SharedSession } from "./session.ts";
import { slices } from "./limits.ts";
import { checkNodes, type Refusal } from "./nodes.ts";
import { RefusalEvents } from "./refusal-events.ts";
import { pollSilenceBoundMs, subscribe, SubscribeTimeoutError, type Subscribed } from "./subscription.ts";
import { toReading } from "./values.ts";
import { writeNode } from "./write.ts";

interface MappedTag {
  tag: Variable;
  nodeId: string;
}

/** Resolves with `p`, or rejects when `signal` aborts first; a value that arrives later goes to `late`. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal, late: (v: T) => void): Promise<T> {
  if (signal.aborted) {
    p.then(late, () => undefined);
    return Promise.reject(new Error("aborted"));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.then(late, () => undefined);
      reject(new Error("aborted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) late(v);
        else resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

export class OpcuaClientDriver implements Driver {
  private id = "";
  private cfg!: OpcuaClientConfig;
  private tags: MappedTag[] = [];
  private byTag = new Map<string, MappedTag>();
  private lease: Lease<SharedSession> | null = null;
  private subscription: ClientSubscription | null = null;
  /** the pool entry of the shared session, dropped when the server is found hung */
  private dropSession: () => void = () => undefined;
  private timeoutMs = 5000;
  /** tags refused at connect (missing node, DataType the tag cannot hold), by tag name */
  private refused = new Map<string, Refusal & { tag: MappedTag }>();
  /** which refusals the log holds already (kept across the runs of this driver instance) */
  private refusalEvents = new RefusalEvents(undefined);

  meta() {
    return { name: "opcua", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read", "write", "subscribe"] };
  }

  init(init: DriverInit): void {
    this.id = init.id;
    this.refusalEvents = new RefusalEvents(init.lastEvents);
    this.cfg = parseDriverConfig(init.id, OpcuaClientConfig, init.config);
    this.cfg.pkiDir = clientPkiDir(this.cfg, init.dataDir);
    if (this.cfg.user && this.cfg.user.password === undefined && this.cfg.user.passwordEnv === undefined) {
      throw new DriverConfigError(init.id, "config.user", "needs password or passwordEnv");
    }
    if ((this.cfg.securityPolicy === "None") !== (this.cfg.securityMode === "None")) {
      throw new DriverConfigError(init.id, "config.securityMode", `mode ${this.cfg.securityMode} does not go with policy ${this.cfg.securityPolicy}`);
    }
    this.tags = init.tags.map((tag) => {
      const nodeId = (tag.address as { nodeId?: unknown } | undefined)?.nodeId;
      const where = `tag '${tag.tag}' address.nodeId`;
      if (typeof nodeId !== "string" || !nodeId) throw new DriverConfigError(init.id, where, 'expected a NodeId such as "ns=1;s=Boiler.Temperature"');
      try {
        resolveNodeId(nodeId);
      } catch {
        throw new DriverConfigError(init.id, where, `'${nodeId}' is not a NodeId (expected e.g. "ns=1;s=Boiler.Temperature" or "ns=2;i=42")`);
      }
      return { tag, nodeId };
    });
    this.byTag = new Map(this.tags.map((m) => [m.tag.tag, m]));
  }

  /** Takes the shared session of (URL, security, user), opening it if this driver is the first. */
  async connect(endpoint: Endpoint | undefined, signal: AbortSignal): Promise<void> {
    if (!endpoint || endpoint.scheme !== "opc.tcp") throw new DriverConfigError(this.id, "endpoint", "expected an opc.tcp:// endpoint");
    const { pool } = endpoint;
    const key = sessionKey(endpoint, this.cfg);
    const acquiring = pool.acquire(
      key,
      () => openSession(endpoint, this.cfg, () => void pool.invalidate(key)),
      (s) => s.close(),
    );
    try {
      // the opening is shared with other drivers: an abort leaves it running and gives back our lease
      this.lease = await untilAborted(acquiring, signal, (lease) => void lease.release());
    } catch (cause) {
      if (signal.aborted) throw new DriverError(this.id, "connect aborted");
      throw new DriverError(this.id, `cannot open a session on ${endpoint.url}: ${explainConnectError(cause as Error, this.cfg)}`, { cause });
    }
    this.timeoutMs = endpoint.timeoutMs;
    this.dropSession = () => void pool.invalidate(key);
    await this.checkTags(this.lease.value, signal);
  }

  /** Refuses the tags whose node is missing or of a DataType the tag cannot hold (bounded: a hung server fails the connect). */
  private async checkTags(shared: SharedSession, signal: AbortSignal): Promise<void> {
    const checking = shared.operationLimits().then(({ nodesPerRead }) => checkNodes(shared.session, this.tags.map((m) => ({ nodeId: m.nodeId, tagType: m.tag.type })), nodesPerRead));
    const checked = await deadline(
      checking,
      Math.max(this.timeoutMs * 2, 1000),
      signal,
    ).catch((e: Error) => e);
    if (checked === ABORTED) throw new DriverError(this.id, "connect aborted");
    if (checked === TIMED_OUT || !Array.isArray(checked)) {
      this.dropSession();
      throw new DriverError(this.id, `cannot read the DataType of the tags' nodes: ${checked === TIMED_OUT ? "no answer in time" : String(checked)}`);
    }
    this.refused = new Map(checked.map((r) => [this.tags[r.index]!.tag.tag, { ...r, tag: this.tags[r.index]! }]));
  }

  /** The tags to read: all but those refused. */
  private readable(): MappedTag[] {
    return this.refused.size ? this.tags.filter((m) => !this.refused.has(m.tag.tag)) : this.tags;
  }

  /** Server-certificate trust decisions of the session as driver events (logged by the gateway, kept in the log). */
  private reportTrust(tx: FrameSink, shared: SharedSession): void {
    for (const n of shared.takeTrustNotes()) {
      const reason =
        n.kind === "accepted_untrusted"
          ? `untrusted server certificate ${n.thumbprint} accepted for driver '${this.id}' only (trustServerCertificate); nothing written to ${n.pkiDir}/trusted`
          : `server certificate ${n.thumbprint} is trusted (found in ${n.pkiDir}/trusted/certs${n.wasRefused ? ", where someone moved it after it was refused" : ""})`;
      tx.event(`opcua.certificate_${n.kind}`, { thumbprint: n.thumbprint, pkiDir: n.pkiDir, reason });
    }
  }

  /**
   * Sends each refused tag's Bad frame (at every start of the read loop), and an event naming it when
   * the log does not hold that refusal yet.
   */
  private async reportRefused(tx: FrameSink, refusals: readonly (Refusal & { tag: MappedTag })[], signal: AbortSignal): Promise<void> {
    if (!refusals.length) return;
    const ts = Date.now() * 1000;
    await tx.send(refusals.map((r) => ({ kind: "data" as const, tag: r.tag.tag.tag, value: null, ts, quality: r.quality, source: this.id })));
    const said = refusals.map((r) => ({ tag: r.tag.tag.tag, nodeId: r.tag.nodeId, quality: r.quality, reason: `tag '${r.tag.tag.tag}': ${r.reason}` }));
    await this.refusalEvents.report(tx, said, signal);
  }

  /**
   * The server is connected but silent: every tag Bad_Timeout (the values are no longer vouched for),
   * the shared session dropped (a new connect opens a new one), and the loop ends so that the manager
   * restarts the driver.
   */
  private async failSilent(tx: FrameSink, tags: readonly MappedTag[], why: string): Promise<never> {
    await tx.send(this.badFrames(tags, Quality.Bad_Timeout));
    tx.event("opcua.server_silent", { reason: why });
    this.dropSession();
    throw new DriverError(this.id, `the server is not answering (hung?): ${why}`);
  }

  private frame(m: MappedTag, dv: DataValue): DataFrame {
    const r = toReading(m.tag, dv);
    return { kind: "data", tag: m.tag.tag, value: r.value, ts: r.tsMicros, quality: r.quality, source: this.id };
  }

  private badFrames(tags: readonly MappedTag[], quality: number): DataFrame[] {
    const ts = Date.now() * 1000;
    return tags.map((m) => ({ kind: "data" as const, tag: m.tag.tag, value: null, ts, quality, source: this.id }));
  }

  async readLoop(tx: FrameSink, signal: AbortSignal): Promise<void> {
    const shared = this.lease?.value;
    if (!shared) throw new DriverError(this.id, "readLoop before connect");
    const { client } = shared;
    this.reportTrust(tx, shared);
    const pending: DataFrame[] = [];
    let closed: Error | null = null;
    let wake: () => void = () => undefined;
    let subscribed: Subscribed | null = null;
    /** performance.now() of the last answer to a poll read */
    let answeredAt = performance.now();
    let tags = this.readable();
    /** performance.now() since which silence counts: not while node-opcua is repairing a lost connection */
    let restoredAt = performance.now();
    // the client is shared and outlives this loop: every listener added here is removed in finally
    const onClose = (err?: Error | null) => {
      closed = err ?? new Error("connection closed");
      wake();
    };
    const onLost = () => {
      pending.push(...this.badFrames(tags, Quality.Bad_NotConnected));
      wake();
    };
    const onRestored = () => {
      restoredAt = performance.now();
      // node-opcua may have recreated the monitored items (a server that restarted): give its first publish the same time
      subscribed?.awaitFirstPublish();
    };
    client.on("close", onClose);
    client.on("connection_lost", onLost);
    client.on("connection_reestablished", onRestored);
    const tick = (ms: number) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    try {
      await this.reportRefused(tx, [...this.refused.values()], signal);
      // joined a session whose connection is being repaired: say so until values flow again
      if (!shared.isConnected) onLost();
      if (shared.isClosed) onClose(new Error("connection closed"));
      if (this.cfg.mode === "subscription" && !closed && tags.length) {
        subscribed = await this.subscribe(shared, tags, pending, () => wake(), signal).catch(async (err: unknown) => {
          if (!(err instanceof SubscribeTimeoutError)) throw err;
          pending.length = 0; // values of the calls answered before: the Bad_Timeout frames supersede them
          return await this.failSilent(tx, tags, `setting up the subscription: ${err.message}`);
        });
        tags = await this.refuseUnmonitored(tx, tags, subscribed.refused, signal);
      }
      // the tags served now are known (in subscription mode once the items are created)
      if (this.cfg.mode === "poll" || subscribed) await this.refusalEvents.settle(tx, tags.map((m) => ({ tag: m.tag.tag, nodeId: m.nodeId })), signal);
      const groups = new Map<string, MappedTag[]>();
      for (const m of tags) groups.set(m.tag.group, [...(groups.get(m.tag.group) ?? []), m]);
      const due = new Map<string, number>([...groups.keys()].map((g) => [g, 0]));
      while (!signal.aborted) {
        // reconnection is off or node-opcua gave up: end the loop, the manager restarts the driver with backoff
        if (closed) {
          // every tag Bad before the loop ends (the session may have been dropped by another driver on it)
          await tx.send([...pending.splice(0), ...this.badFrames(tags, Quality.Bad_NotConnected)]);
          throw new DriverError(this.id, `connection lost: ${(closed as Error).message}`);
        }
        const silence = shared.isConnected && tags.length ? this.silence(subscribed, Math.max(subscribed?.lastHeard() ?? answeredAt, restoredAt)) : null;
        if (silence) {
          pending.length = 0; // older readings: the Bad_Timeout frames supersede them
          await this.failSilent(tx, tags, silence);
        }
        if (this.cfg.mode === "poll") {
          const now = Date.now();
          for (const [name, group] of groups) {
            if (due.get(name)! > now) continue; // every group is in `due`
            due.set(name, now + (this.cfg.groups[name] ?? this.cfg.intervalMs));
            const frames = await this.poll(shared, group);
            // unanswered in time: not vouched for; a server silent past the bound is taken as hung (above)
            if (frames === TIMED_OUT) pending.push(...this.badFrames(group, Quality.Bad_Timeout));
            else {
              answeredAt = performance.now();
              pending.push(...frames);
            }
          }
        }
        if (pending.length) await tx.send(pending.splice(0));
        else tx.heartbeat();
        const next = this.cfg.mode === "poll" ? Math.max(5, Math.min(...due.values()) - Date.now()) : this.cfg.publishingIntervalMs;
        await tick(next);
      }
    } finally {
      client.off("close", onClose);
      client.off("connection_lost", onLost);
      client.off("connection_reestablished", onRestored);
    }
  }

  /** Why the server is taken as hung (silent since `heardAt`, past the bound), or null. */
  private silence(subscribed: Subscribed | null, heardAt: number): string | null {
    const boundMs = subscribed?.boundMs() ?? pollSilenceBoundMs(this.cfg, this.timeoutMs);
    const silentMs = performance.now() - heardAt;
    if (silentMs <= boundMs) return null;
    const what = !subscribed
      ? "answer to a read"
      : subscribed.awaitingFirstPublish()
        ? `first publish response after creating the monitored items (created in ${Math.round(subscribed.createdInMs)} ms)`
        : "publish response (data or keep-alive)";
    return `no ${what} for ${Math.round(silentMs)} ms (bound ${boundMs} ms)`;
  }

  /** Reports the tags whose monitored item the server did not create; returns the others. */
  private async refuseUnmonitored(tx: FrameSink, tags: MappedTag[], refused: readonly Refusal[], signal: AbortSignal): Promise<MappedTag[]> {
    if (!refused.length) return tags;
    const withTags = refused.map((r) => ({ ...r, tag: tags[r.index]! })); // indexes into the monitored list
    await this.reportRefused(tx, withTags, signal);
    const out = new Set(withTags.map((r) => r.tag));
    return tags.filter((m) => !out.has(m));
  }

  /** One read of a poll group; TIMED_OUT when the server does not answer within the endpoint's timeout. */
  private async poll(shared: SharedSession, tags: MappedTag[]): Promise<DataFrame[] | typeof TIMED_OUT> {
    // a read would wait for its timeout while node-opcua reconnects
    if (!shared.isConnected) return this.badFrames(tags, Quality.Bad_NotConnected);
    try {
      const dvs = await deadline(this.read(shared, tags), this.timeoutMs);
      if (dvs === TIMED_OUT || dvs === ABORTED) return TIMED_OUT;
      return dvs.map((dv, i) => this.frame(tags[i]!, dv));
    } catch {
      // a read that fails as the connection drops: the readings are Bad, the loop goes on
      return this.badFrames(tags, shared.isConnected ? Quality.Bad_CommunicationError : Quality.Bad_NotConnected);
    }
  }

  /** The values of `tags`, in reads of at most the server's nodes-per-read limit (one past it is refused whole). */
  private async read(shared: SharedSession, tags: readonly MappedTag[]): Promise<DataValue[]> {
    const { nodesPerRead } = await shared.operationLimits();
    if (tags.length <= nodesPerRead) return await shared.session.read(tags.map((m) => ({ nodeId: m.nodeId, attributeId: AttributeIds.Value })));
    const out: DataValue[] = [];
    for (const slice of slices(tags, nodesPerRead)) out.push(...(await shared.session.read(slice.items.map((m) => ({ nodeId: m.nodeId, attributeId: AttributeIds.Value })))));
    return out;
  }

  private async subscribe(shared: SharedSession, tags: readonly MappedTag[], pending: DataFrame[], notify: () => void, signal: AbortSignal): Promise<Subscribed> {
    try {
      const { monitoredItemsPerCall } = await shared.operationLimits();
      const onChange = (index: number, dv: DataValue) => {
        const m = tags[index];
        if (m) pending.push(this.frame(m, dv));
        // many changes arrive per publish: the loop sends them together at its next tick
        if (pending.length >= 5000) notify();
      };
      const subscribed = await subscribe(shared, this.cfg, tags.map((m) => m.nodeId), monitoredItemsPerCall, onChange, signal);
      this.subscription = subscribed.subscription;
      return subscribed;
    } catch (cause) {
      if (cause instanceof SubscribeTimeoutError) throw cause; // the read loop reports the server silent
      throw new DriverError(this.id, `cannot subscribe: ${(cause as Error).message}`, { cause });
    }
  }

  async write(cmd: CmdFrame, tag: Variable): Promise<WriteResult> {
    const m = this.byTag.get(tag.tag);
    if (!m) return { ok: false, code: "device_address_error", error: `tag '${tag.tag}' has no nodeId in driver '${this.id}'` };
    const refused = this.refused.get(tag.tag);
    if (refused) return { ok: false, code: refused.quality === Quality.Bad_TypeMismatch ? "refused_type_mismatch" : "device_address_error", error: `not written: tag '${tag.tag}': ${refused.reason}` };
    const shared = this.lease?.value;
    if (!shared) return { ok: false, code: "driver_not_running", error: "BadNotConnected: no session to the server (not written)" };
    return await writeNode(shared, m.nodeId, cmd, tag, this.timeoutMs);
  }

  async shutdown(): Promise<void> {
    const { lease, subscription } = this;
    this.lease = null;
    this.subscription = null;
    // only this driver's subscription: the session stays for the others until the last lease goes
    if (subscription) await settlesWithin(subscription.terminate(), 1000);
    await lease?.release();
  }
}

export const createOpcuaClient = () => new OpcuaClientDriver();
