// The OPC UA client driver: reads nodes of an external OPC UA server into tags, by subscription
// (monitored items, the server reports changes) or by polling, and writes commands back. Drivers on
// one server with the same security settings and user share one client session (session.ts, through
// the endpoint pool), each with its own subscription. node-opcua reconnects after a connection loss
// and restores the session and subscriptions; meanwhile the tags are Bad_NotConnected.
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  TimestampsToReturn,
  type ClientSubscription,
  type DataValue,
} from "node-opcua";
import type { CmdFrame, DataFrame, Variable } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink, type WriteResult } from "../contract.ts";
import type { Endpoint, Lease } from "../endpoint.ts";
import { DriverConfigError, DriverError } from "../errors.ts";
import { toRaw } from "../mapping.ts";
import { parseDriverConfig } from "../validate.ts";
import { OpcuaClientConfig } from "./config.ts";
import { clientPkiDir, explainConnectError, openSession, sessionKey, within, type SharedSession } from "./session.ts";
import { toReading, toVariant } from "./values.ts";

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

  meta() {
    return { name: "opcua", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read", "write", "subscribe"] };
  }

  init(init: DriverInit): void {
    this.id = init.id;
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
      if (typeof nodeId !== "string" || !nodeId) throw new DriverConfigError(init.id, `tag '${tag.tag}' address.nodeId`, 'expected a NodeId such as "ns=1;s=Boiler.Temperature"');
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
    const pending: DataFrame[] = [];
    let closed: Error | null = null;
    let wake: () => void = () => undefined;
    // the client is shared and outlives this loop: every listener added here is removed in finally
    const onClose = (err?: Error | null) => {
      closed = err ?? new Error("connection closed");
      wake();
    };
    const onLost = () => {
      pending.push(...this.badFrames(this.tags, Quality.Bad_NotConnected));
      wake();
    };
    client.on("close", onClose);
    client.on("connection_lost", onLost);
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
      // joined a session whose connection is being repaired: say so until values flow again
      if (!shared.isConnected) onLost();
      if (shared.isClosed) onClose(new Error("connection closed"));
      if (this.cfg.mode === "subscription" && !closed) await this.subscribe(shared, pending, () => wake());
      const groups = new Map<string, MappedTag[]>();
      for (const m of this.tags) groups.set(m.tag.group, [...(groups.get(m.tag.group) ?? []), m]);
      const due = new Map<string, number>([...groups.keys()].map((g) => [g, 0]));
      while (!signal.aborted) {
        // reconnection is off or node-opcua gave up: end the loop, the manager restarts the driver with backoff
        if (closed) {
          // the Bad_NotConnected frames of the loss go out first
          if (pending.length) await tx.send(pending.splice(0));
          throw new DriverError(this.id, `connection lost: ${(closed as Error).message}`);
        }
        if (this.cfg.mode === "poll") {
          const now = Date.now();
          for (const [name, tags] of groups) {
            if (due.get(name)! > now) continue; // every group is in `due`
            due.set(name, now + (this.cfg.groups[name] ?? this.cfg.intervalMs));
            pending.push(...(await this.poll(shared, tags)));
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
    }
  }

  private async poll(shared: SharedSession, tags: MappedTag[]): Promise<DataFrame[]> {
    // a read would wait for its timeout while node-opcua reconnects
    if (!shared.isConnected) return this.badFrames(tags, Quality.Bad_NotConnected);
    try {
      const dvs = await shared.session.read(tags.map((m) => ({ nodeId: m.nodeId, attributeId: AttributeIds.Value })));
      return dvs.map((dv, i) => this.frame(tags[i]!, dv));
    } catch {
      // a read that fails as the connection drops: the readings are Bad, the loop goes on
      return this.badFrames(tags, shared.isConnected ? Quality.Bad_CommunicationError : Quality.Bad_NotConnected);
    }
  }

  private async subscribe(shared: SharedSession, pending: DataFrame[], notify: () => void): Promise<void> {
    const sub = await shared.session.createSubscription2({
      requestedPublishingInterval: this.cfg.publishingIntervalMs,
      requestedLifetimeCount: 1000,
      requestedMaxKeepAliveCount: 20,
      maxNotificationsPerPublish: 0,
      publishingEnabled: true,
      priority: 1,
    });
    this.subscription = sub;
    const group = ClientMonitoredItemGroup.create(
      sub,
      this.tags.map((m) => ({ nodeId: m.nodeId, attributeId: AttributeIds.Value })),
      { samplingInterval: this.cfg.samplingIntervalMs, queueSize: this.cfg.queueSize, discardOldest: true },
      TimestampsToReturn.Both,
    );
    group.on("changed", (_item: unknown, dv: DataValue, index: number) => {
      const m = this.tags[index];
      if (m) pending.push(this.frame(m, dv));
      // many changes arrive per publish: the loop sends them together at its next tick
      if (pending.length >= 5000) notify();
    });
    await new Promise<void>((resolve, reject) => {
      group.once("initialized", () => resolve());
      group.once("err", (e: unknown) => reject(new DriverError(this.id, `monitored items refused: ${String(e)}`)));
    });
  }

  async write(cmd: CmdFrame, tag: Variable): Promise<WriteResult> {
    const m = this.byTag.get(tag.tag);
    if (!m) return { ok: false, error: `tag '${tag.tag}' has no nodeId in driver '${this.id}'` };
    const shared = this.lease?.value;
    if (!shared || !shared.isConnected) return { ok: false, error: "BadNotConnected: no connection to the server" };
    try {
      const status = await shared.session.write({ nodeId: m.nodeId, attributeId: AttributeIds.Value, value: { value: toVariant(tag, toRaw(tag, cmd.value)) } });
      return status.isGood() ? { ok: true } : { ok: false, error: `${status.name}: the server refused the write` };
    } catch (e) {
      return { ok: false, error: `BadCommunicationError: ${(e as Error).message.split("\n")[0]}` };
    }
  }

  async shutdown(): Promise<void> {
    const { lease, subscription } = this;
    this.lease = null;
    this.subscription = null;
    // only this driver's subscription: the session stays for the others until the last lease goes
    await within(1000, subscription?.terminate());
    await lease?.release();
  }
}

export const createOpcuaClient = () => new OpcuaClientDriver();
