// Hot reload: the config directory is watched; an edit is loaded and validated as a whole. A bad edit
// is refused with the file and path (log line + `config.rejected` event frame) and the running config
// stays. A good one replaces the tag catalog (bridges follow its 'change' event) and restarts only the
// drivers whose entry, endpoint or tags changed. Of gateway.yml `modbusSlave.map` applies live (the
// slave rebuilds its register map on the catalog's 'change') and so does `auth` (the verifier every
// route asks is replaced whole: a removed JWKS key or a rotated secret stops working at once; the
// secret and JWKS files are watched too); ports, the data directory and the rest need a restart.
import { watch, type FSWatcher } from "node:fs";
import { join, relative, resolve } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parseEndpointUrl, type Endpoint } from "../drivers/index.ts";
import { parseModbusSlaveConfig } from "../bridges/modbus-slave/index.ts";
import { authOf, TokenVerifier } from "./auth/index.ts";
import { ConfigError, redactSecrets, type DriverEntry, type GatewayConfig, type Variable } from "../schemas/index.ts";
import { loadConfig, type Config } from "./config.ts";
import type { GatewayContext, Service } from "./context.ts";
import { tagValidators } from "./validators.ts";

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
    const endpoint: Endpoint | undefined = ep && { ...parseEndpointUrl(ep.url), id: d.endpoint!, timeoutMs: ep.timeoutMs, pool: ctx.pool };
    specs.set(d.id, { entry: d, endpoint, tags: config.tags.filter((t) => t.driver === d.id) });
  }
  return specs;
}

const sameSpec = (a: DriverSpec, b: DriverSpec) =>
  isDeepStrictEqual(a.entry, b.entry) && isDeepStrictEqual(a.tags, b.tags) && a.endpoint?.url === b.endpoint?.url && a.endpoint?.timeoutMs === b.endpoint?.timeoutMs;

export interface ReloadResult {
  ok: boolean;
  error?: string;
  driversRestarted: string[];
  driversAdded: string[];
  driversRemoved: string[];
  tags: number;
  /** the auth key material (secret, JWKS, issuer, audience, lifetime bound) changed and applies now */
  authKeysChanged: boolean;
}

/** Loads the config directory again and applies it; never throws. */
export async function reloadConfig(ctx: GatewayContext): Promise<ReloadResult> {
  const result: ReloadResult = { ok: false, driversRestarted: [], driversAdded: [], driversRemoved: [], tags: ctx.catalog.size, authKeysChanged: false };
  let next: Config;
  let verifier: TokenVerifier;
  let edited: GatewayConfig; // gateway.yml as now on disk
  try {
    next = loadConfig(ctx.config.dir, tagValidators);
    edited = next.gateway;
    next.gateway = liveGateway(ctx.config.gateway, edited);
    // the slave rebuilds its map from this section against the new tags on the catalog's 'change': check
    // it here, before anything is applied, so a bad map (overlap, unknown or removed tag) refuses the edit
    parseModbusSlaveConfig(next.gateway.modbusSlave, join(next.dir, "gateway.yml"), new Map(next.tags.map((t) => [t.tag, t])));
    // the new keys are read before anything applies: an unreadable secret or JWKS refuses the edit
    verifier = TokenVerifier.fromConfig(next.gateway.auth, next.dir);
  } catch (e) {
    // the message goes to the log and to an event any reader can query: no secret value in it
    result.error = redactSecrets(e instanceof ConfigError ? e.message : `config reload failed: ${(e as Error).message}`);
    ctx.logger.error({ error: result.error }, "configuration edit refused; the running configuration stays");
    ctx.drivers.appendEvent({ kind: "event", type: "config.rejected", source: "gateway", ts: Date.now() * 1000, data: { error: result.error } });
    return result;
  }
  const before = driverSpecs(ctx, ctx.config);
  const after = driverSpecs(ctx, next);
  for (const [id, spec] of before) {
    const n = after.get(id);
    if (!n) {
      await ctx.drivers.remove(id);
      result.driversRemoved.push(id);
    } else if (!sameSpec(spec, n)) {
      await ctx.drivers.remove(id);
      ctx.drivers.add(n.entry, n.endpoint, n.tags);
      result.driversRestarted.push(id);
    }
  }
  for (const [id, spec] of after) {
    if (before.has(id)) continue;
    ctx.drivers.add(spec.entry, spec.endpoint, spec.tags);
    result.driversAdded.push(id);
  }
  if (!isDeepStrictEqual(edited, next.gateway)) ctx.logger.warn("gateway.yml changed: ports, data directory and log tuning apply after a restart");
  ctx.config = next;
  ctx.catalog.replace(next.tags);
  result.authKeysChanged = authOf(ctx).replace(verifier);
  result.ok = true;
  result.tags = next.tags.length;
  ctx.logger.info(result, "configuration reloaded");
  ctx.drivers.appendEvent({ kind: "event", type: "config.reloaded", source: "gateway", ts: Date.now() * 1000, data: { ...result } });
  return result;
}

/** The running gateway section with the parts of the edited one that apply live: the Modbus slave's map and auth. */
function liveGateway(running: GatewayConfig, edited: GatewayConfig): GatewayConfig {
  const { map } = edited.modbusSlave as { map?: unknown }; // the slave's schema owns `map` (bridges/modbus-slave/config.ts)
  const modbusSlave: Record<string, unknown> = { ...running.modbusSlave };
  if (map === undefined) delete modbusSlave.map;
  else modbusSlave.map = map;
  return { ...running, auth: edited.auth, modbusSlave: modbusSlave as GatewayConfig["modbusSlave"] };
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
  return {
    name: "config-watcher",
    async start() {
      watcher = watch(ctx.config.dir, (_event, file) => {
        if (file && !/\.ya?ml$/.test(String(file)) && !authFiles(ctx).has(String(file))) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          running = running.then(() => reloadConfig(ctx));
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
