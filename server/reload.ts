// Hot reload: the config directory is watched; an edit is loaded and validated as a whole, with the
// same checks as at start (server/config-check.ts). A bad edit is refused with the file and path (log
// line + `config.rejected` event frame) and the running config stays; the next edit is loaded afresh.
// A good one replaces the tag catalog (bridges follow its 'change' event) and restarts only the
// drivers whose entry, endpoint or tags changed. Of gateway.yml `modbusSlave.map` applies live (the
// slave rebuilds its register map on the catalog's 'change') and so does `auth` (the verifier every
// route asks is replaced whole: a removed JWKS key or a rotated secret stops working at once; the
// secret and JWKS files are watched too), and `console` (its users: a removed user's login ends at
// once); ports, the data directory and the rest need a restart.
import { watch, type FSWatcher } from "node:fs";
import { relative, resolve } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parseEndpointUrl, type Endpoint } from "../drivers/index.ts";
import { resolveTlsFiles } from "../storage/tls.ts";
import { authOf, TokenVerifier } from "./auth/index.ts";
import { ConfigError, redactSecrets, type DriverEntry, type GatewayConfig, type Variable } from "../schemas/index.ts";
import type { Config } from "./config.ts";
import { loadGatewayConfig } from "./config-check.ts";
import type { GatewayContext, Service } from "./context.ts";

interface DriverSpec {
  entry: DriverEntry;
  endpoint: Endpoint | undefined;
  tags: Variable[];
}

/** What each enabled driver of a config runs with. */
export function driverSpecs(ctx: GatewayContext, config: Config): Map<string, DriverSpec> {
  const specs = new Map<string, DriverSpec>();
  for (const d of config.drivers) {
    if (!d.enabled) continue;
    const ep = d.endpoint ? config.endpoints[d.endpoint] : undefined;
    // d.endpoint is set whenever ep is: ep was looked up by it
    const endpoint: Endpoint | undefined = ep && { ...parseEndpointUrl(ep.url), id: d.endpoint!, timeoutMs: ep.timeoutMs, pool: ctx.pool, ...(ep.tls ? { tls: resolveTlsFiles(ep.tls, config.dir) } : {}) };
    specs.set(d.id, { entry: d, endpoint, tags: config.tags.filter((t) => t.driver === d.id) });
  }
  return specs;
}

/**
 * What of a tag its driver reads with. Description, unit, write limits and tenant are the catalog's (bridges,
 * checkWrite and the executor read them from the catalog), so editing them does not restart the driver: a
 * restart would mark every tag of the PLC Bad for a poll, for a changed description. The read-side mapping
 * (expression, clamp, deadbands, report by exception) is applied by the manager and changes live (remap).
 */
const CATALOG_SIDE: ReadonlySet<string> = new Set(["description", "unit", "min", "max", "tenant", "expr", "clamp", "deadband", "deadbandPercent", "reportByException", "maxIntervalMs"]);

/**
 * Whether two tags read alike (every field but the catalog side equal, as isDeepStrictEqual would say):
 * key by key without a copy of each tag, a third of the cost on a 10,000-tag reload.
 */
export function sameReadSide(a: Variable, b: Variable): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let keys = 0;
  for (const k in x) {
    if (CATALOG_SIDE.has(k)) continue;
    const u = x[k];
    const v = y[k];
    if (!Object.is(u, v) && (typeof u !== "object" || u === null || !isDeepStrictEqual(u, v))) return false;
    if (v === undefined && !(k in y)) return false; // present as undefined on one side only
    keys++;
  }
  for (const k in y) if (!CATALOG_SIDE.has(k)) keys--;
  return keys === 0;
}

const sameSpec = (a: DriverSpec, b: DriverSpec) =>
  isDeepStrictEqual(a.entry, b.entry) &&
  a.tags.length === b.tags.length &&
  a.tags.every((t, i) => sameReadSide(t, b.tags[i]!)) &&
  a.endpoint?.url === b.endpoint?.url &&
  a.endpoint?.timeoutMs === b.endpoint?.timeoutMs &&
  // other certificate files: a new connection (the same files with new contents are read at the next connect anyway)
  isDeepStrictEqual(a.endpoint?.tls, b.endpoint?.tls);

export interface ReloadResult {
  ok: boolean;
  error?: string;
  driversRestarted: string[];
  driversAdded: string[];
  driversRemoved: string[];
  tags: number;
  /** the auth key material (secret, JWKS, issuer, audience, lifetime bound) changed and applies now */
  authKeysChanged: boolean;
  /** gateway.yml on disk differs from the running one beyond what applies live (the Modbus slave's map, auth, console users): true until a restart */
  restartNeeded: boolean;
  /** where it differs: the paths in gateway.yml (e.g. `mqtt.cert`) that wait for a restart */
  restartPaths: string[];
  /** of a refused edit: the file and the path in it at fault */
  file?: string;
  path?: string;
}

/** Records a refused edit: log line and `config.rejected` event (file and path, never a secret's value). */
function refuse(ctx: GatewayContext, result: ReloadResult, e: unknown): ReloadResult {
  const where = e instanceof ConfigError ? { file: e.file, path: e.path } : { file: ctx.config.dir, path: "" };
  // the message goes to the log and to an event any reader can query: no secret value in it
  result.error = redactSecrets(e instanceof ConfigError ? e.message : `config reload failed: ${(e as Error)?.message ?? String(e)}`);
  Object.assign(result, where);
  ctx.logger.error({ error: result.error, ...where }, "configuration edit refused; the running configuration stays");
  ctx.drivers.appendEvent({ kind: "event", type: "config.rejected", source: "gateway", ts: Date.now() * 1000, data: { error: result.error, ...where } });
  return result;
}

/** The reload in progress per gateway: the watcher and the API (PUT /api/config/files) reload one at a time. */
const reloading = new WeakMap<GatewayContext, Promise<unknown>>();

/**
 * Loads the config directory again and applies it; never throws. Reloads of one gateway run one after
 * the other: two at once would both compute their driver changes from the config before either applied.
 */
export function reloadConfig(ctx: GatewayContext): Promise<ReloadResult> {
  const next = (reloading.get(ctx) ?? Promise.resolve()).then(() => reloadNow(ctx));
  reloading.set(ctx, next.catch(() => undefined));
  return next;
}

async function reloadNow(ctx: GatewayContext): Promise<ReloadResult> {
  const result: ReloadResult = { ok: false, driversRestarted: [], driversAdded: [], driversRemoved: [], tags: ctx.catalog.size, authKeysChanged: false, restartNeeded: false, restartPaths: [] };
  let next: Config;
  let edited: GatewayConfig; // gateway.yml as now on disk
  let verifier: TokenVerifier;
  let before: Map<string, DriverSpec>;
  let after: Map<string, DriverSpec>;
  try {
    // the same checks as at start: schemas, references, endpoint URLs, driver configs, and the Modbus
    // slave's map against the new tags (the slave rebuilds it on the catalog's 'change'), all before
    // anything is applied
    next = await loadGatewayConfig(ctx.config.dir);
    edited = next.gateway;
    next.gateway = liveGateway(ctx.config.gateway, edited);
    before = driverSpecs(ctx, ctx.config);
    after = driverSpecs(ctx, next);
    // the new keys are read before anything applies: an unreadable secret or JWKS refuses the edit
    verifier = TokenVerifier.fromConfig(next.gateway.auth, next.dir);
  } catch (e) {
    return refuse(ctx, result, e);
  }
  try {
    await apply(ctx, before, after, result);
  } catch (e) {
    // a driver that fails to stop or start is the supervisor's business; the catalog and config still move on
    ctx.logger.error({ err: e }, "applying the configuration edit failed part-way");
  }
  if (!isDeepStrictEqual(edited, next.gateway)) {
    result.restartNeeded = true;
    result.restartPaths = changedPaths(next.gateway, edited);
    // named: "ports, data directory and log tuning" was said of an edit of mqtt.cert too, which read as if it had applied
    ctx.logger.warn({ paths: result.restartPaths }, `gateway.yml changed at ${shortList(result.restartPaths)}: applies after a restart of the gateway (on reload only auth, console.users and modbusSlave.map apply)`);
  }
  const consoleUsersChanged = !isDeepStrictEqual(ctx.config.gateway.console.users, next.gateway.console.users);
  ctx.config = next;
  ctx.catalog.replace(next.tags);
  result.authKeysChanged = authOf(ctx).replace(verifier);
  // open streams re-check their tokens: one of a removed (or re-roled) console user ends now
  if (consoleUsersChanged && !result.authKeysChanged) authOf(ctx).emit("change");
  result.ok = true;
  result.tags = next.tags.length;
  ctx.logger.info(result, "configuration reloaded");
  ctx.drivers.appendEvent({ kind: "event", type: "config.reloaded", source: "gateway", ts: Date.now() * 1000, data: { ...result } });
  return result;
}

/**
 * Restarts the drivers whose spec changed, removes and adds the others. Every changed driver is stopped
 * before any starts again: drivers on one serial line share it through the endpoint pool (the first
 * opener's settings win), and restarted one after the other they kept it open, so a corrected baud rate
 * or timeout never reached the line until the gateway restarted (found from outside on a pty).
 */
async function apply(ctx: GatewayContext, before: Map<string, DriverSpec>, after: Map<string, DriverSpec>, result: ReloadResult): Promise<void> {
  const restart: DriverSpec[] = [];
  try {
    for (const [id, spec] of before) {
      const n = after.get(id);
      if (!n) {
        await ctx.drivers.remove(id);
        result.driversRemoved.push(id);
      } else if (!sameSpec(spec, n)) {
        await ctx.drivers.remove(id);
        restart.push(n);
        result.driversRestarted.push(id);
      } else {
        ctx.drivers.remap(id, n.tags);
      }
    }
  } finally {
    // also when a later removal failed: a driver stopped for its restart is started again
    for (const n of restart) ctx.drivers.add(n.entry, n.endpoint, n.tags);
  }
  for (const [id, spec] of after) {
    if (before.has(id)) continue;
    ctx.drivers.add(spec.entry, spec.endpoint, spec.tags);
    result.driversAdded.push(id);
  }
}

/** The paths (`mqtt.cert`, `http.port`) at which two gateway sections differ, leaves first found; no values (secrets stay out). */
export function changedPaths(a: unknown, b: unknown, at = ""): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  const plain = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!plain(a) || !plain(b)) return [at || "(root)"];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.flatMap((k) => changedPaths(a[k], b[k], at ? `${at}.${k}` : k));
}

const shortList = (paths: string[], max = 5) => (paths.length > max ? `${paths.slice(0, max).join(", ")} and ${paths.length - max} more` : paths.join(", "));

/** The running gateway section with the parts of the edited one that apply live: the Modbus slave's map, auth and the console's users. */
function liveGateway(running: GatewayConfig, edited: GatewayConfig): GatewayConfig {
  const { map } = edited.modbusSlave as { map?: unknown }; // the slave's schema owns `map` (bridges/modbus-slave/config.ts)
  const modbusSlave: Record<string, unknown> = { ...running.modbusSlave };
  if (map === undefined) delete modbusSlave.map;
  else modbusSlave.map = map;
  return { ...running, auth: edited.auth, console: edited.console, modbusSlave: modbusSlave as GatewayConfig["modbusSlave"] };
}

/** The key files of `auth:` (as names within the config directory): an edit of them reloads too. */
function authFiles(ctx: GatewayContext): Set<string> {
  const { hs256SecretFile, jwksFile } = ctx.config.gateway.auth;
  return new Set([hs256SecretFile, jwksFile].filter((f): f is string => !!f).map((f) => relative(ctx.config.dir, resolve(ctx.config.dir, f))));
}

/** Watches the config directory and reloads after edits settle. */
export function configWatcher(ctx: GatewayContext, settleMs = 300): Service {
  let watcher: FSWatcher | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let running: Promise<unknown> = Promise.resolve();
  let reloads = 0;
  let refused: { error: string; at: string } | null = null; // the files on disk are not what runs
  const reload = async () => {
    const r = await reloadConfig(ctx);
    reloads++;
    refused = r.ok ? null : { error: r.error ?? "refused", at: new Date().toISOString() };
  };
  return {
    name: "config-watcher",
    // a refused edit leaves the gateway doing its job with the previous config: ok, with the refusal as a detail
    status: () => ({ state: "ok", reasons: [], reloads, lastRefused: refused }),
    async start() {
      watcher = watch(ctx.config.dir, (_event, file) => {
        if (file && !/\.ya?ml$/.test(String(file)) && !authFiles(ctx).has(String(file))) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          // one reload at a time, and a failed one must not poison the chain: every later edit would be
          // dropped until a restart (reloadConfig never throws; the catch is the belt to its braces)
          running = running.then(reload).catch((err) => ctx.logger.error({ err }, "config reload failed"));
        }, settleMs);
      });
      watcher.on("error", (err) => ctx.logger.error({ err }, "config watch failed"));
    },
    async stop() {
      if (timer) clearTimeout(timer);
      watcher?.close();
      await running;
    },
  };
}
