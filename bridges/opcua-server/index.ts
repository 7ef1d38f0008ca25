// The built-in OPC UA server (bridge): address space from the tag catalog, values from the log
// (latest per tag at start, then the live tail), UA writes turned into commands. Options: config.ts;
// security (PKI, users, roles): security.ts; the tag tree: address-space.ts.
import { OPCUAServer, type UAObject } from "node-opcua";
import type { Logger } from "pino";
import type { Catalog, DataFrame, Variable } from "../../schemas/index.ts";
import type { CommandBus } from "../../storage/commands.ts";
import type { EventLog } from "../../storage/index.ts";
import { TagTree } from "./address-space.ts";
import { parseOpcuaConfig, type OpcuaServerConfig } from "./config.ts";
import { certificateRoleResolver, pkiFolders, securityModes, securityPolicies, tagRolePermissions, userManager, type Pki } from "./security.ts";
import { commandWriter } from "./writes.ts";

/** What the bridge needs from the gateway (a structural subset of the gateway's context). */
export interface OpcuaServerDeps {
  config: { gateway: { opcua: unknown; dataDir: string; gatewayId: string } };
  log: EventLog;
  catalog: Catalog;
  commands: CommandBus;
  logger: Logger;
}

export class OpcuaServerBridge {
  readonly name = "opcua-server";
  readonly config: OpcuaServerConfig;
  private server: OPCUAServer | null = null;
  private tree: TagTree | null = null;
  private pki: Pki | null = null;
  private readonly stopper = new AbortController();
  private following: Promise<void> | null = null;
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
      ...(cfg.host ? { host: cfg.host } : {}),
      ...(cfg.hostname ? { hostname: cfg.hostname } : {}),
      resourcePath: cfg.resourcePath,
      buildInfo: { productName: `edge-gateway ${this.deps.config.gateway.gatewayId}`, manufacturerName: "edge-gateway" },
      serverCertificateManager: this.pki.server,
      userCertificateManager: this.pki.users,
      securityPolicies: securityPolicies(cfg),
      securityModes: securityModes(cfg),
      allowAnonymous: cfg.allowAnonymous,
      userManager: userManager(cfg),
      serverCapabilities: { maxSessions: cfg.maxSessions },
      maxConnectionsPerEndpoint: cfg.maxConnections,
      isAuditing: false,
    });
    this.server = server;
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
    // head and latest() are read in the same synchronous step: every frame after `from` comes from the tail
    const from = log.head + 1;
    this.applyCatalog(catalog.all());
    this.following = this.follow(from);
    catalog.on("change", this.onCatalogChange);
    await server.start();
    this.startupMs = performance.now() - t0;
    this.logger.info({ url: this.endpointUrl, tags: this.tree.size, startupMs: Math.round(this.startupMs), pki: this.pki.dir }, "opcua server listening");
  }

  private readonly onCatalogChange = (tags: Variable[]) => {
    try {
      const { added, removed } = this.applyCatalog(tags);
      this.logger.info({ added: added.length, removed: removed.length }, "opcua address space updated");
    } catch (err) {
      this.logger.error({ err }, "opcua address space update failed");
    }
  };

  private applyCatalog(tags: readonly Variable[]): { added: string[]; removed: string[] } {
    const tree = this.tree;
    if (!tree) return { added: [], removed: [] };
    const changes = tree.sync(tags);
    const latest = this.deps.log.latest();
    for (const name of changes.added) {
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

  /** A latest-value server needs no cursor: after a restart the latest values come from log.latest(). */
  private async follow(from: number): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      try {
        for await (const page of this.deps.log.follow({ from, kinds: ["data"], signal })) {
          const tree = this.tree;
          if (!tree) return;
          for (const f of page) this.publish(tree, f as DataFrame);
          from = page[page.length - 1]!.offset + 1;
        }
        return; // the log closed or we were stopped
      } catch (err) {
        this.logger.error({ err }, "opcua: reading the log failed; retrying");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async stop(): Promise<void> {
    this.deps.catalog.off("change", this.onCatalogChange);
    this.stopper.abort();
    await this.following;
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
