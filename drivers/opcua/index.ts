// The OPC UA client driver: reads nodes of an external OPC UA server into tags, by subscription
// (monitored items, the server reports changes) or by polling, and writes commands back.
// node-opcua reconnects after a connection loss and restores the subscription; when it gives up,
// the read loop ends and the manager restarts the driver with backoff.
import { join } from "node:path";
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  ClientSubscription,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  UserTokenType,
  type ClientSession,
  type DataValue,
  type UserIdentityInfo,
} from "node-opcua";
import type { CmdFrame, DataFrame, Variable } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink, type WriteResult } from "../contract.ts";
import type { Endpoint } from "../endpoint.ts";
import { DriverConfigError, DriverError } from "../errors.ts";
import { toRaw } from "../mapping.ts";
import { parseDriverConfig } from "../validate.ts";
import { OpcuaClientConfig } from "./config.ts";
import { toReading, toVariant } from "./values.ts";

/** Waits for `p` at most `ms`; its failure is ignored (used on the way out). */
async function within(ms: number, p: Promise<unknown> | undefined): Promise<void> {
  if (!p) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

interface MappedTag {
  tag: Variable;
  nodeId: string;
}

export class OpcuaClientDriver implements Driver {
  private id = "";
  private cfg!: OpcuaClientConfig;
  private tags: MappedTag[] = [];
  private byTag = new Map<string, MappedTag>();
  private client: OPCUAClient | null = null;
  private session: ClientSession | null = null;
  private subscription: ClientSubscription | null = null;

  meta() {
    return { name: "opcua", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read", "write", "subscribe"] };
  }

  init(init: DriverInit): void {
    this.id = init.id;
    this.cfg = parseDriverConfig(init.id, OpcuaClientConfig, init.config);
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

  private identity(): UserIdentityInfo {
    const u = this.cfg.user;
    if (!u) return { type: UserTokenType.Anonymous };
    const password = u.password ?? process.env[u.passwordEnv ?? ""] ?? "";
    return { type: UserTokenType.UserName, userName: u.name, password };
  }

  async connect(endpoint: Endpoint | undefined, signal: AbortSignal): Promise<void> {
    if (!endpoint || endpoint.scheme !== "opc.tcp") throw new DriverConfigError(this.id, "endpoint", "expected an opc.tcp:// endpoint");
    const pkiDir = this.cfg.pkiDir ?? join(process.env.EDGE_DATA_DIR ?? "./data", "pki", "opcua-client");
    const client = OPCUAClient.create({
      // one application name per PKI folder: the certificate there carries its URI
      applicationName: "edge-gateway",
      endpointMustExist: false,
      securityPolicy: this.cfg.securityPolicy === "None" ? SecurityPolicy.None : SecurityPolicy.Basic256Sha256,
      securityMode: MessageSecurityMode[this.cfg.securityMode],
      clientCertificateManager: new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: this.cfg.trustServerCertificate }),
      requestedSessionTimeout: this.cfg.sessionTimeoutMs,
      keepSessionAlive: true,
      // the first connection fails fast (the manager's backoff takes over); a lost one is retried by node-opcua
      connectionStrategy: { maxRetry: this.cfg.reconnectAttempts, initialDelay: 500, maxDelay: 5000 },
      defaultTransactionTimeout: endpoint.timeoutMs * 10,
    });
    this.client = client;
    const onAbort = () => void client.disconnect().catch(() => undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await client.connect(endpoint.url);
      this.session = await client.createSession(this.identity());
    } catch (cause) {
      await client.disconnect().catch(() => undefined);
      this.client = null;
      throw new DriverError(this.id, `cannot open a session on ${endpoint.url}: ${(cause as Error).message}`, { cause });
    } finally {
      signal.removeEventListener("abort", onAbort);
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
    const client = this.client;
    if (!client || !this.session) throw new DriverError(this.id, "not connected");
    // node-opcua gave up reconnecting: end the loop, the manager restarts the driver with backoff
    let closed: Error | null = null;
    let wake: () => void = () => undefined;
    client.on("close", (err?: Error | null) => {
      closed = err ?? new Error("connection closed");
      wake();
    });
    const pending: DataFrame[] = [];
    client.on("connection_lost", () => {
      pending.push(...this.badFrames(this.tags, Quality.Bad_NotConnected));
      wake();
    });
    const tick = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        signal.addEventListener("abort", wake, { once: true });
      });
    if (this.cfg.mode === "subscription") await this.subscribe(pending, () => wake());
    const groups = new Map<string, MappedTag[]>();
    for (const m of this.tags) groups.set(m.tag.group, [...(groups.get(m.tag.group) ?? []), m]);
    const due = new Map<string, number>([...groups.keys()].map((g) => [g, 0]));
    while (!signal.aborted) {
      if (closed) throw new DriverError(this.id, `connection lost: ${(closed as Error).message}`);
      if (this.cfg.mode === "poll") {
        const now = Date.now();
        for (const [name, tags] of groups) {
          if (due.get(name)! > now) continue; // every group is in `due`
          due.set(name, now + (this.cfg.groups[name] ?? this.cfg.intervalMs));
          pending.push(...(await this.poll(tags)));
        }
      }
      if (pending.length) await tx.send(pending.splice(0));
      else tx.heartbeat();
      const next = this.cfg.mode === "poll" ? Math.max(5, Math.min(...due.values()) - Date.now()) : this.cfg.publishingIntervalMs;
      await tick(next);
    }
  }

  private async poll(tags: MappedTag[]): Promise<DataFrame[]> {
    try {
      // the session was opened in connect(); readLoop checked it
      const dvs = await this.session!.read(tags.map((m) => ({ nodeId: m.nodeId, attributeId: AttributeIds.Value })));
      return dvs.map((dv, i) => this.frame(tags[i]!, dv));
    } catch {
      // a read that fails while node-opcua reconnects: the readings are Bad, the loop goes on
      return this.badFrames(tags, Quality.Bad_CommunicationError);
    }
  }

  private async subscribe(pending: DataFrame[], notify: () => void): Promise<void> {
    const session = this.session!; // checked by readLoop
    const sub = await session.createSubscription2({
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
    const session = this.session;
    if (!session) return { ok: false, error: "BadNotConnected: no session" };
    const status = await session.write({ nodeId: m.nodeId, attributeId: AttributeIds.Value, value: { value: toVariant(tag, toRaw(tag, cmd.value)) } });
    return status.isGood() ? { ok: true } : { ok: false, error: `${status.name}: the server refused the write` };
  }

  async shutdown(): Promise<void> {
    const { client, session, subscription } = this;
    this.client = null;
    this.session = null;
    this.subscription = null;
    // a server that is gone would make each goodbye wait for its transaction timeout
    await within(1000, subscription?.terminate());
    await within(1000, session?.close());
    await within(2000, client?.disconnect());
  }
}

export const createOpcuaClient = () => new OpcuaClientDriver();
