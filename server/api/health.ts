// GET /healthz (liveness and a short status) and GET /metrics (Prometheus text format).
import { Elysia } from "elysia";
import type { GatewayContext } from "../context.ts";

export function healthApi(ctx: GatewayContext) {
  return new Elysia({ name: "health" })
    .get("/healthz", () => {
      const drivers = ctx.drivers.status();
      return {
        status: "ok",
        gatewayId: ctx.config.gateway.gatewayId,
        log: { head: ctx.log.head, queueDepth: ctx.log.queueDepth, paused: ctx.log.isPaused },
        drivers: drivers.map((d) => ({ id: d.id, type: d.type, state: d.state, restarts: d.restarts, errors: d.errors, lastError: d.lastError ?? null })),
      };
    })
    .get("/metrics", async ({ set }) => {
      set.headers["content-type"] = ctx.metrics.registry.contentType;
      return await ctx.metrics.registry.metrics();
    });
}
