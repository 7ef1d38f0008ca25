// GET /healthz (liveness: the process answers), GET /readyz (readiness: every component's state and the
// verdict, 200 or 503) and GET /metrics (Prometheus text format).
import { Elysia } from "elysia";
import { documented, Liveness } from "../../schemas/api.ts";
import { Readiness } from "../../schemas/index.ts";
import type { GatewayContext } from "../context.ts";
import { readiness } from "../readiness.ts";

export function healthApi(ctx: GatewayContext) {
  return new Elysia({ name: "health" })
    .get(
      "/healthz",
      () => {
      // liveness only: answering at all means the process and its event loop are alive. Whether the
      // gateway does its job is /readyz's question (a restart would not fix a full disk or a dead PLC).
      const drivers = ctx.drivers.status();
      return {
        status: "ok" as const,
        gatewayId: ctx.config.gateway.gatewayId,
        uptimeSeconds: Math.round(process.uptime()),
        log: { head: ctx.log.head, queueDepth: ctx.log.queueDepth, paused: ctx.log.isPaused, degraded: ctx.log.isDegraded },
        drivers: drivers.map((d) => ({ id: d.id, type: d.type, state: d.state, restarts: d.restarts, errors: d.errors, lastError: d.lastError ?? null })),
      };
      },
      { response: { 200: Liveness }, detail: { tags: ["health"], security: [], summary: "Liveness: the process answers (with a summary of the log and drivers)" } },
    )
    .get(
      "/readyz",
      ({ set }) => {
        const { doc, httpStatus } = readiness(ctx, ctx.services?.() ?? []);
        set.status = httpStatus;
        return doc;
      },
      { response: { 200: Readiness, 503: Readiness }, detail: { tags: ["health"], security: [], summary: "Readiness: each component's state; 200 when all are ok, 503 otherwise" } },
    )
    .get(
      "/metrics",
      async ({ set }) => {
        set.headers["content-type"] = ctx.metrics.registry.contentType;
        return await ctx.metrics.registry.metrics();
      },
      { detail: { tags: ["health"], security: [], summary: "Prometheus metrics (text exposition format)", responses: { 200: documented("metrics", { "text/plain": null }) } } },
    );
}
