// The built-in OPC UA server (bridge): address space from the tag catalog, values from the log
// (latest per tag at start, then the live tail), UA writes turned into commands. Options: config.ts;
// security (PKI, users, roles): security.ts; the tag tree: address-space.ts; session limits: sessions.ts.
// Contract: README.md beside this file.
import { OPCUAServer, type UAObject } from "node-opcua";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { isLoopbackHost, type Catalog, type DataFrame, type Variable } from "../../schemas/index.ts";
import type { ComponentStatus } from "../../schemas/health.ts";
import type { CommandBus } from "../../storage/commands.ts";
import { consume, type LogConsumer } from "../../storage/consumer.ts";
import type { EventLog } from "../../storage/index.ts";
import { TagTree, type TreeChanges } from "./address-space.ts";
import { parseOpcuaConfig, type OpcuaServerConfig } from "./config.ts";
import { listCertificates, trustCertificate, type ClientCertificate } from "./certificates.ts";
export { UnknownCertificate, type ClientCertificate } from "./certificates.ts";
import { certificateRoleResolver, pkiFolders, securityModes, securityPolicies, tagRolePermissions, userManager, type Pki } from "./security.ts";
import { SessionGuard } from "./sessions.ts";
import { commandWriter } from "./writes.ts";

/** A consumer this many seconds behind the log makes the service "degraded" (SCADA sees old values). */
const LAG_DEGRADED_SECONDS = 5;

/** What the bridge needs from the gateway (a structural subset of the gateway's context). */
export interface OpcuaServerDeps {
  config: { gateway: { opcua: unknown; dataDir: string; gatewayId: string } };
  log: EventLog;
  catalog: Catalog;
  commands: CommandBus;
  logger: Logger;
  /** the gateway's metrics (sessions, subscriptions, refused sessions are registered on it) */
  metrics?: { registry: Registry };
}

export class OpcuaServerBridge {
  readonly name = "opcua-server";
  readonly config: OpcuaServerConfig;
  private server: OPCUAServer | null = null;
  private tree: TagTree | null = null;
  private pki: Pki | null = null;
  private consumer: LogConsumer | null = null;
  private sessions: SessionGuard | null = null;
  private readonly logger: Logger;
  /** ms from start() to listening, for the benchmark and the log */
  startupMs = 0;

  constructor(private readonly deps: OpcuaServerDeps) {
    this.config = parseOpcuaConfig(deps.config.gateway.opcua);
    this.logger = deps.logger.child({ bridge: "opcua-server" });
  }

  /** opc.tcp://host:port/path of the listening server */
  get endpointUrl(): string {
    return this.server?.getEndpointUrl() ?? "";
  }

  get port(): number {
    return this.server?.endpoints[0]?.port ?? 0;
  }

  get tagCount(): number {
    return this.tree?.size ?? 0;
  }

  async start(): Promise<void> {
    const t0 = performance.now();
    const cfg = this.config;
    const { log, catalog } = this.deps;
    this.pki = pkiFolders(cfg, this.deps.config.gateway.dataDir);
    const server = new OPCUAServer({
      port: cfg.port,
      host: cfg.host,
      // on loopback, advertise the address itself: this machine's name may resolve to another interface
      ...(cfg.hostname || isLoopbackHost(cfg.host) ? { hostname: cfg.hostname ?? cfg.host } : {}),
      resourcePath: cfg.resourcePath,
      buildInfo: { productName: `edge-gateway ${this.deps.config.gateway.gatewayId}`, manufacturerName: "edge-gateway" },
      serverCertificateManager: this.pki.server,
      userCertificateManager: this.pki.users,
      securityPolicies: securityPolicies(cfg),
      securityModes: securityModes(cfg),
      allowAnonymous: cfg.allowAnonymous,
      userManager: userManager(cfg),
      // minSupportedSampleRate: node-opcua folds the changes of an exception-based node over this window
      // (default 100 ms) for a client asking for sampling 0; the configured minimum (0 by default)
      // delivers every change the log has, e.g. 11.9 then 11.8 within one window
      serverCapabilities: { maxSessions: cfg.maxSessions, minSupportedSampleRate: cfg.minimumSamplingIntervalMs },
      maxConnectionsPerEndpoint: cfg.maxConnections,
      isAuditing: false,
    });
    this.server = server;
    this.sessions = new SessionGuard(server, cfg, this.logger);
    if (this.deps.metrics) this.sessions.register(this.deps.metrics.registry);
    server.roleResolvers.push(certificateRoleResolver(cfg));
    await server.initialize();
    // initialize() created the address space; the assertion holds from here on
    const addressSpace = server.engine.addressSpace!;
    const ns = addressSpace.getOwnNamespace();
    const root: UAObject = ns.addFolder(addressSpace.rootFolder.objects, { browseName: cfg.rootFolder, nodeId: "s=folder:" });
    this.tree = new TagTree(ns, root, {
      rolePermissions: tagRolePermissions(cfg.allowAnonymous),
      minimumSamplingInterval: cfg.minimumSamplingIntervalMs,
      onWrite: commandWriter({ commands: this.deps.commands, writeTimeoutMs: cfg.writeTimeoutMs, commandTtlMs: cfg.commandTtlMs, logger: this.logger }),
    });
    // The consumer fixes its start at the head in start(), and latest() is read in the same synchronous
    // step: every frame after it comes from the tail. A latest-value server needs no cursor: after a
    // restart the latest values come from log.latest() again.
    this.consumer = consume(log, {
      name: "opcua-server",
      from: "head",
      kinds: ["data"],
      handler: (page) => {
        const tree = this.tree;
        if (tree) for (const f of page) this.publish(tree, f as DataFrame);
      },
      logger: this.logger,
    });
    this.applyCatalog(catalog.all());
    catalog.on("change", this.onCatalogChange);
    try {
      await server.start();
    } catch (err) {
      await this.stop(); // the consumer and the catalog listener must not outlive a server that never listened
      throw err;
    }
    this.startupMs = performance.now() - t0;
    this.logger.info({ url: this.endpointUrl, tags: this.tree.size, startupMs: Math.round(this.startupMs), pki: this.pki.dir }, "opcua server listening");
  }

  private readonly onCatalogChange = (tags: Variable[]) => {
    try {
      const { added, removed, updated, rebuilt } = this.applyCatalog(tags);
      this.logger.info({ added: added.length, removed: removed.length, updated: updated.length }, "opcua address space updated");
      // clients cache a node's DataType, so a new one is a new node: their monitored items on it ended
      if (rebuilt.length) this.logger.warn({ tags: rebuilt }, "opcua: nodes re-created with a new DataType; clients must monitor them again");
    } catch (err) {
      this.logger.error({ err }, "opcua address space update failed");
    }
  };

  private applyCatalog(tags: readonly Variable[]): TreeChanges {
    const tree = this.tree;
    if (!tree) return { added: [], removed: [], updated: [], rebuilt: [] };
    const changes = tree.sync(tags);
    const latest = this.deps.log.latest();
    for (const name of [...changes.added, ...changes.rebuilt]) {
      const f = latest.get(name);
      if (f) this.publish(tree, f);
    }
    return changes;
  }

  private publish(tree: TagTree, f: DataFrame): void {
    try {
      tree.setValue(f);
    } catch (err) {
      // one odd value (a type the variable refuses) must not stop the others
      this.logger.warn({ err, tag: f.tag }, "opcua: value not published");
    }
  }

  /** The trusted and rejected client certificates of the PKI folder (empty before start). */
  certificates(): ClientCertificate[] {
    return this.pki ? listCertificates(this.pki) : [];
  }

  /** Trusts a rejected client certificate by thumbprint: that client's next connect is accepted. */
  async trust(thumbprint: string): Promise<ClientCertificate> {
    if (!this.pki) throw new Error("the OPC UA server is not started");
    const c = await trustCertificate(this.pki, thumbprint);
    this.logger.info({ thumbprint: c.thumbprint, subject: c.subject, kind: c.kind }, "opcua: client certificate trusted");
    return c;
  }

  /** Sessions, subscriptions and the log consumer, for the readiness document. */
  status(): ComponentStatus {
    const reasons: string[] = [];
    const c = this.consumer?.status();
    const g = this.sessions;
    if (!this.server || !c) return { state: "down", reasons: ["not started"] };
    if (c.state === "retrying") reasons.push(`reading the log fails (retrying): ${c.lastError}`);
    if (c.lagSeconds > LAG_DEGRADED_SECONDS) reasons.push(`values lag the log by ${Math.round(c.lagSeconds)} s`);
    const sessions = g?.sessions ?? 0;
    if (sessions >= this.config.maxSessions) reasons.push(`all ${this.config.maxSessions} sessions in use: new clients are refused`);
    return {
      state: reasons.length ? "degraded" : "ok",
      reasons,
      url: this.endpointUrl,
      tags: this.tagCount,
      sessions,
      maxSessions: this.config.maxSessions,
      subscriptions: g?.subscriptions ?? 0,
      sessionsRefused: g?.refusedTotal ?? 0,
      consumer: { state: c.state, position: c.position, lagFrames: c.lagFrames, lagSeconds: c.lagSeconds, errors: c.errors, lastError: c.lastError },
    };
  }

  async stop(): Promise<void> {
    this.deps.catalog.off("change", this.onCatalogChange);
    await this.consumer?.stop();
    const server = this.server;
    this.server = null;
    this.tree = null;
    if (server) await server.shutdown(0).catch((err) => this.logger.warn({ err }, "opcua server shutdown"));
    await this.pki?.users.dispose().catch(() => undefined);
  }
}

/** The service factory registered in server/services.ts. */
export function createOpcuaServer(deps: OpcuaServerDeps): OpcuaServerBridge {
  return new OpcuaServerBridge(deps);
}
