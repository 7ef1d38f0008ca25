// The readiness verdict (GET /readyz): each component's state from what it reports (the log's health,
// the drivers' states, the log consumers' statuses, each started service's status()), and the worst of
// them as the gateway's. Thresholds come from gateway.yml `health`.
import type { ConsumerStatus } from "../storage/index.ts";
import type { HealthState, Readiness } from "../schemas/index.ts";
import type { GatewayContext, Service } from "./context.ts";
import { badTagReasons, tagHealthByDriver } from "./tag-health.ts";
import type { TagHealth } from "./driver-advice.ts";

const allBad = (h: TagHealth | undefined) => h !== undefined && h.total > 0 && h.bad === h.total;

const RANK: Record<HealthState, number> = { ok: 0, degraded: 1, down: 2 };
const worst = (states: HealthState[]): HealthState => states.reduce<HealthState>((w, s) => (RANK[s] > RANK[w] ? s : w), "ok");
const iso = (ms: number) => new Date(ms).toISOString();

function logComponent(ctx: GatewayContext, now: number): Readiness["components"]["log"] {
  const h = ctx.log.health();
  const stallS = ctx.config.gateway.health.commitStallSeconds;
  const silentS = (now - h.lastCommitAt) / 1000;
  const commitsStalled = h.queueDepth > 0 && silentS >= stallS;
  const reasons: string[] = [];
  if (h.degraded) reasons.push(`commits fail (${h.failedCommits} attempts, retried): ${h.reason}`);
  else if (commitsStalled) reasons.push(`commits stalled: ${h.queueDepth} frames queued and no commit for ${silentS.toFixed(1)} s`);
  return {
    state: reasons.length ? "degraded" : "ok",
    reasons,
    head: h.head,
    queueDepth: h.queueDepth,
    paused: h.paused,
    degraded: h.degraded,
    reason: h.reason,
    degradedSince: h.degradedSince === null ? null : iso(h.degradedSince),
    failedCommits: h.failedCommits,
    lastCommitAt: iso(h.lastCommitAt),
    commitsStalled,
    reopens: h.reopens,
  };
}

function driversComponent(ctx: GatewayContext): Readiness["components"]["drivers"] {
  const drivers = ctx.drivers.status().map((d) => ({ id: d.id, type: d.type, state: d.state, restarts: d.restarts, errors: d.errors, lastError: d.lastError ?? null }));
  const reasons = drivers.filter((d) => d.state !== "Active").map((d) => `driver ${d.id} is ${d.state}${d.lastError ? `: ${d.lastError}` : ""}`);
  // an Active driver whose reads all time out (a hung device) is not reading either: its tags say so
  const health = tagHealthByDriver(ctx);
  reasons.push(...badTagReasons(ctx, health));
  const reading = drivers.filter((d) => d.state === "Active" && !allBad(health.get(d.id))).length;
  // no driver at all reading is down; some of them is degraded
  return { state: reasons.length === 0 ? "ok" : reading === 0 && drivers.length > 0 ? "down" : "degraded", reasons, drivers };
}

function consumerReasons(c: ConsumerStatus, lagFrames: number, lagSeconds: number): string[] {
  const out: string[] = [];
  if (c.state === "retrying") out.push(`consumer ${c.name} is retrying after ${c.errors} errors: ${c.lastError ?? "unknown error"}`);
  if (c.lagFrames > lagFrames) out.push(`consumer ${c.name} is ${c.lagFrames} frames behind the head (threshold ${lagFrames})`);
  else if (c.lagSeconds > lagSeconds) out.push(`consumer ${c.name} is ${c.lagSeconds.toFixed(1)} s behind the head (threshold ${lagSeconds} s)`);
  return out;
}

function consumersComponent(ctx: GatewayContext): Readiness["components"]["consumers"] {
  const { consumerLagFrames, consumerLagSeconds } = ctx.config.gateway.health;
  const statuses = ctx.log.consumers();
  const reasons = statuses.flatMap((c) => consumerReasons(c, consumerLagFrames, consumerLagSeconds));
  const consumers = statuses.map((c) => ({ name: c.name, state: c.state, position: c.position, head: c.head, lagFrames: c.lagFrames, lagSeconds: c.lagSeconds, errors: c.errors, lastError: c.lastError }));
  return { state: reasons.length ? "degraded" : "ok", reasons, consumers };
}

function servicesComponent(services: readonly Service[]): Readiness["components"]["services"] {
  const out: Readiness["components"]["services"] = {};
  for (const s of services) {
    if (!s.status) continue;
    try {
      out[s.name] = s.status();
    } catch (e) {
      // a service that cannot even say how it is, is not well
      out[s.name] = { state: "degraded", reasons: [`status() failed: ${e instanceof Error ? e.message : String(e)}`] };
    }
  }
  return out;
}

/** The readiness document and its HTTP status: 200 when everything is ok, 503 otherwise. */
export function readiness(ctx: GatewayContext, services: readonly Service[], now = Date.now()): { doc: Readiness; httpStatus: number } {
  const components = { log: logComponent(ctx, now), drivers: driversComponent(ctx), consumers: consumersComponent(ctx), services: servicesComponent(services) };
  const named: [string, { state: HealthState; reasons: string[] }][] = [
    ["log", components.log],
    ["drivers", components.drivers],
    ["consumers", components.consumers],
    ...Object.entries(components.services),
  ];
  const status = worst(named.map(([, c]) => c.state));
  const reasons = named.flatMap(([name, c]) => c.reasons.map((r) => `${name}: ${r}`));
  const doc: Readiness = { status, reasons, gatewayId: ctx.config.gateway.gatewayId, checkedAt: iso(now), components };
  return { doc, httpStatus: status === "ok" ? 200 : 503 };
}
