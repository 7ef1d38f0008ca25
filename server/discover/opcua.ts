// `edgectl discover opcua <url>`: browses an OPC UA server from the Objects folder (bounded depth, node
// count and time) and drafts the configuration that reads what it found: one tag per scalar variable
// of a type a tag can hold (the same mapping the driver accepts at connect, drivers/opcua/nodes.ts),
// named after its browse path, with its node id, its unit (EngineeringUnits) and its access (AccessLevel).
// The session is the driver's own (drivers/opcua/session.ts), so security and user work the same way.
import { Value } from "@sinclair/typebox/value";
import {
  AttributeIds,
  BrowseDirection,
  DataType,
  NodeClassMask,
  NodeId,
  ReferenceTypeIds,
  findBasicDataType,
  type BrowseDescriptionLike,
  type BrowseResult,
  type ClientSession,
  type ReferenceDescription,
} from "node-opcua";
import type { DataType as TagType, Variable } from "../../schemas/index.ts";
import { OpcuaClientConfig } from "../../drivers/opcua/config.ts";
import { clientPkiDir, explainConnectError, openSession } from "../../drivers/opcua/session.ts";
import { deadline } from "../../storage/time.ts";
import { DiscoverError, DiscoverOptionError, renderFiles, tagSegment, type DiscoveredFiles, type FragmentLine } from "./files.ts";

export interface OpcuaDiscoverOptions {
  url: string;
  /** driver and endpoint id in the generated files (default "opcua1") */
  driverId?: string;
  /** levels below the start node browsed, at most (default 6) */
  maxDepth?: number;
  /** nodes browsed, at most (default 5000); the draft says when the bound cut it */
  maxNodes?: number;
  /** the whole discovery, at most (default 60 s) */
  timeoutMs?: number;
  /** where to start (default the Objects folder, i=85) */
  startNodeId?: string;
  securityPolicy?: "None" | "Basic256Sha256";
  securityMode?: "None" | "Sign" | "SignAndEncrypt";
  user?: { name: string; password?: string; passwordEnv?: string };
  /** the client PKI folder, written into the driver entry (default: the driver's default, see dataDir) */
  pkiDir?: string;
  /** the gateway data directory whose pki/opcua-client is used when pkiDir is not given */
  dataDir?: string;
  trustServerCertificate?: boolean;
}

export interface OpcuaDiscovery {
  files: DiscoveredFiles;
  tags: number;
  browsed: number;
  /** variables left out, and why */
  skipped: { path: string; nodeId: string; reason: string }[];
  /** true when maxDepth or maxNodes cut the browse */
  truncated: boolean;
}

/** The tag type of a built-in DataType: the type a tag reads it as without loss (nodes.ts accepts each). */
export const TAG_TYPE_OF: Partial<Record<DataType, TagType>> = {
  [DataType.Boolean]: "bool",
  [DataType.SByte]: "int16",
  [DataType.Byte]: "uint16",
  [DataType.Int16]: "int16",
  [DataType.UInt16]: "uint16",
  [DataType.Int32]: "int32",
  [DataType.UInt32]: "uint32",
  [DataType.Int64]: "int64",
  [DataType.UInt64]: "uint64",
  [DataType.Float]: "float32",
  [DataType.Double]: "float64",
  [DataType.String]: "string",
};

/** Nodes per Browse and per Read at most, fewer when the server states a lower limit (it refuses more whole). */
const CHUNK = 200;
const CURRENT_READ = 1;
const CURRENT_WRITE = 2;

interface Found {
  nodeId: string;
  path: string[];
  unitsNodeId?: string;
}

class Browser {
  readonly variables: Found[] = [];
  browsed = 0;
  truncated = false;

  constructor(
    private readonly session: ClientSession,
    private readonly perBrowse: number,
    private readonly maxDepth: number,
    private readonly maxNodes: number,
    private readonly signal: AbortSignal,
  ) {}

  private async browseAll(nodeIds: string[]): Promise<BrowseResult[]> {
    const out: BrowseResult[] = [];
    for (let i = 0; i < nodeIds.length; i += this.perBrowse) {
      const desc: BrowseDescriptionLike[] = nodeIds.slice(i, i + this.perBrowse).map((nodeId) => ({
        nodeId,
        browseDirection: BrowseDirection.Forward,
        referenceTypeId: ReferenceTypeIds.HierarchicalReferences,
        includeSubtypes: true,
        nodeClassMask: NodeClassMask.Object | NodeClassMask.Variable,
        resultMask: 63,
      }));
      const results = await this.session.browse(desc);
      for (const r of results) {
        // servers hand long lists in pieces: follow the continuation points
        let cp: Buffer | null = r.continuationPoint ?? null;
        while (cp?.length) {
          const [next]: BrowseResult[] = await this.session.browseNext([cp], false);
          r.references = [...(r.references ?? []), ...(next?.references ?? [])];
          cp = next?.continuationPoint ?? null;
        }
        out.push(r);
      }
    }
    return out;
  }

  /** Breadth first from `start`: every Object and Variable below it, ns=0 (the server's own) left out. */
  async run(start: string): Promise<void> {
    let level: Found[] = [{ nodeId: start, path: [] }];
    const seen = new Set([start]);
    for (let depth = 0; level.length && depth < this.maxDepth; depth++) {
      if (this.signal.aborted) throw new DiscoverError("discovery timed out while browsing");
      const results = await this.browseAll(level.map((f) => f.nodeId));
      const next: Found[] = [];
      for (const [i, r] of results.entries()) this.take(level[i]!, r.references ?? [], next, seen);
      level = next;
    }
    if (level.length) this.truncated = true;
  }

  private take(parent: Found, refs: ReferenceDescription[], next: Found[], seen: Set<string>): void {
    for (const ref of refs) {
      const id = ref.nodeId.toString();
      if (ref.referenceTypeId.value === ReferenceTypeIds.HasProperty && ref.referenceTypeId.namespace === 0) {
        if (ref.browseName.name === "EngineeringUnits") parent.unitsNodeId = id;
        continue; // properties are metadata of their variable, not tags
      }
      if (ref.nodeId.namespace === 0 || seen.has(id)) continue;
      if (this.browsed >= this.maxNodes) {
        this.truncated = true;
        return;
      }
      seen.add(id);
      this.browsed++;
      const found: Found = { nodeId: id, path: [...parent.path, ref.browseName.name ?? id] };
      if (ref.nodeClass === 2 /* Variable */) this.variables.push(found);
      next.push(found); // variables have children too (an AnalogItem's properties)
    }
  }
}

/** Reads attributes of many nodes in chunks of `perRead`. */
async function readAll(session: ClientSession, nodeIds: string[], attributeId: AttributeIds, perRead: number) {
  const out = [];
  for (let i = 0; i < nodeIds.length; i += perRead) out.push(...(await session.read(nodeIds.slice(i, i + perRead).map((nodeId) => ({ nodeId, attributeId })))));
  return out;
}

async function builtIn(session: ClientSession, v: unknown, cache: Map<string, Promise<DataType | undefined>>): Promise<DataType | undefined> {
  if (!(v instanceof NodeId)) return undefined;
  if (v.namespace === 0 && typeof v.value === "number" && v.value >= 1 && v.value <= 25) return v.value as DataType;
  const key = v.toString();
  if (!cache.has(key)) cache.set(key, findBasicDataType(session, v).catch(() => undefined));
  return await cache.get(key);
}

/**
 * Unique tag names: the driver id, then the browse path; a repeated name gets _2, _3... (not a character
 * outside the tag name pattern, or the drafted file would fail its own check), skipping any name taken.
 */
export function tagNamer(driverId: string): (path: string[]) => string {
  const used = new Set<string>();
  return (path) => {
    const base = [driverId, ...path.map(tagSegment)].join("/").slice(0, 190);
    let name = base;
    for (let n = 2; used.has(name); n++) name = `${base}_${n}`;
    used.add(name);
    return name;
  };
}

async function describe(session: ClientSession, vars: Found[], driverId: string, skipped: OpcuaDiscovery["skipped"], perRead: number): Promise<FragmentLine[]> {
  const ids = vars.map((v) => v.nodeId);
  const [types, ranks, access] = [
    await readAll(session, ids, AttributeIds.DataType, perRead),
    await readAll(session, ids, AttributeIds.ValueRank, perRead),
    await readAll(session, ids, AttributeIds.AccessLevel, perRead),
  ];
  const withUnits = vars.filter((v) => v.unitsNodeId);
  const units = new Map((await readAll(session, withUnits.map((v) => v.unitsNodeId!), AttributeIds.Value, perRead)).map((dv, i) => [withUnits[i]!.nodeId, dv.value?.value as { displayName?: { text?: string } } | null]));
  const cache = new Map<string, Promise<DataType | undefined>>();
  const name = tagNamer(driverId);
  const lines: FragmentLine[] = [];
  for (const [i, v] of vars.entries()) {
    const path = v.path.join("/");
    const dataType = await builtIn(session, types[i]!.value?.value, cache);
    const type = dataType === undefined ? undefined : TAG_TYPE_OF[dataType];
    const rank = ranks[i]!.value?.value as number | undefined;
    const reason = !type ? `DataType ${dataType === undefined ? "unknown" : DataType[dataType]} has no tag type` : rank !== undefined && rank >= 0 ? "an array (tags are scalars)" : null;
    if (reason) {
      skipped.push({ path, nodeId: v.nodeId, reason });
      lines.push({ comment: `skipped ${path} (${v.nodeId}): ${reason}` });
      continue;
    }
    const level = (access[i]!.value?.value as number | undefined) ?? CURRENT_READ;
    const acc: Variable["access"] = level & CURRENT_WRITE ? (level & CURRENT_READ ? "RW" : "W") : "R";
    const unit = units.get(v.nodeId)?.displayName?.text || undefined;
    lines.push({ tag: { tag: name(v.path), driver: driverId, type: type!, address: { nodeId: v.nodeId }, ...(unit ? { unit } : {}), access: acc } });
  }
  return lines;
}

function driverConfig(o: OpcuaDiscoverOptions, driverId: string): Record<string, unknown> {
  const cfg: Record<string, unknown> = { mode: "subscription" };
  if (o.securityPolicy && o.securityPolicy !== "None") cfg.securityPolicy = o.securityPolicy;
  if (o.securityMode && o.securityMode !== "None") cfg.securityMode = o.securityMode;
  if (o.pkiDir) cfg.pkiDir = o.pkiDir;
  if (o.trustServerCertificate) cfg.trustServerCertificate = true;
  // never the password itself in drivers.yml: the environment variable that holds it
  if (o.user) cfg.user = { name: o.user.name, passwordEnv: o.user.passwordEnv ?? `EDGE_${driverId.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD` };
  return cfg;
}

/** Browses the server at `o.url` and drafts the three files. Throws DiscoverError naming what failed. */
export async function discoverOpcua(o: OpcuaDiscoverOptions): Promise<OpcuaDiscovery> {
  const driverId = o.driverId ?? "opcua1";
  const timeoutMs = o.timeoutMs ?? 60_000;
  let cfg: OpcuaClientConfig;
  try {
    cfg = Value.Parse(OpcuaClientConfig, { ...driverConfig(o, driverId), pkiDir: clientPkiDir(o, o.dataDir), user: o.user, connectAttempts: 1, reconnect: false });
  } catch (e) {
    throw new DiscoverOptionError(`discover opcua: bad options: ${(e as Error).message}`);
  }
  const endpoint = { url: o.url, timeoutMs: Math.min(timeoutMs, 10_000) };
  const opening = openSession(endpoint, cfg, () => undefined).catch((e: Error) => e);
  const opened = await deadline(opening, timeoutMs);
  if (typeof opened === "symbol") {
    // a session that opens after all must not stay open
    void opening.then((s) => (s instanceof Error ? undefined : s.close()));
  }
  if (typeof opened === "symbol") throw new DiscoverError(`discover opcua: no session with ${o.url} within ${timeoutMs} ms`);
  if (opened instanceof Error) throw new DiscoverError(`discover opcua: cannot connect to ${o.url}: ${explainConnectError(opened, cfg)}`);
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const work = (async () => {
      const limits = await opened.operationLimits();
      const browser = new Browser(opened.session, Math.min(CHUNK, limits.nodesPerBrowse), o.maxDepth ?? 6, o.maxNodes ?? 5000, signal);
      await browser.run(o.startNodeId ?? "i=85");
      const skipped: OpcuaDiscovery["skipped"] = [];
      const lines = await describe(opened.session, browser.variables, driverId, skipped, Math.min(CHUNK, limits.nodesPerRead));
      return { lines, skipped, browser };
    })();
    const r = await deadline(work, timeoutMs);
    if (typeof r === "symbol") throw new DiscoverError(`discover opcua: browsing ${o.url} took longer than ${timeoutMs} ms (lower --max-nodes or --max-depth)`);
    const tags = r.lines.filter((l) => "tag" in l).length;
    const header = `discovered from ${o.url} on ${new Date().toISOString()}: ${tags} tags, ${r.skipped.length} variables skipped${r.browser.truncated ? ", browse cut by maxDepth/maxNodes" : ""}`;
    const files = renderFiles({ header, endpointId: driverId, endpoint, driver: { id: driverId, type: "opcua", endpoint: driverId, enabled: true, config: driverConfig(o, driverId) }, lines: r.lines });
    return { files, tags, browsed: r.browser.browsed, skipped: r.skipped, truncated: r.browser.truncated };
  } finally {
    await opened.close();
  }
}
