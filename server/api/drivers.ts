// GET /api/drivers (read): each driver's state, its last error in plain words with what to do
// (../driver-advice.ts), restarts, errors and poll statistics (frames sent and per second); and the
// operator actions POST /api/drivers/:id/restart | pause | resume (admin scope), each recorded in the
// gateway's log lines with who asked.
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import type { GatewayContext } from "../context.ts";
import { driverAdvice } from "../driver-advice.ts";
import { tagHealthByDriver } from "../tag-health.ts";
import { guarded } from "./console-auth.ts";

const DriverView = t.Object({
  id: t.String(),
  type: t.String(),
  state: t.String({ description: "Loading | Init | Connected | Active | Error | Backoff | Fault | Shutdown" }),
  since: t.String({ description: "ISO time of the last state change" }),
  restarts: t.Number(),
  errors: t.Number(),
  framesSent: t.Number(),
  framesRejected: t.Number(),
  framesPerSecond: t.Number({ description: "frames sent per second since the previous look (0 on the first)" }),
  tags: t.Number(),
  badTags: t.Number({ description: "tags whose latest value is Bad (a driver still Active with Bad tags: a hung device)" }),
  lastError: t.Union([t.String(), t.Null()]),
  advice: t.Object({ words: t.String(), todo: t.String() }),
});

const ActionAnswer = t.Object({ id: t.String(), action: t.String(), state: t.String() });

/** frames/s per driver from framesSent between two looks (kept per gateway) */
const lastLook = new WeakMap<GatewayContext, Map<string, { at: number; sent: number; rate: number }>>();

function rateOf(ctx: GatewayContext, id: string, sent: number): number {
  let looks = lastLook.get(ctx);
  if (!looks) lastLook.set(ctx, (looks = new Map()));
  const now = performance.now();
  const last = looks.get(id);
  if (last && now - last.at < 1000) return last.rate;
  const rate = last && sent >= last.sent ? (sent - last.sent) / ((now - last.at) / 1000) : 0;
  looks.set(id, { at: now, sent, rate });
  return rate;
}

/** Whether the driver's endpoint is a Modbus RTU line: its advice speaks of unit ids and wiring, not IP routes. */
function onSerialLine(ctx: GatewayContext, id: string): boolean {
  const endpoint = ctx.config.drivers.find((d) => d.id === id)?.endpoint;
  const url = endpoint ? ctx.config.endpoints[endpoint]?.url : undefined;
  return url !== undefined && /^(serial|rtu\+tcp):/.test(url);
}

export function driversApi(ctx: GatewayContext) {
  const read = guarded(ctx, "read");
  const admin = guarded(ctx, "admin");
  const action = (name: "restart" | "pause" | "resume", run: (id: string) => Promise<boolean>) =>
    async ({ params, request, set }: { params: { id: string }; request: Request; set: { status?: number | string } }) =>
      admin(request, set, async (sub) => {
        if (!(await run(params.id))) {
          set.status = 404;
          return { error: "unknown_driver", message: `no driver '${params.id}' (GET /api/drivers lists them)`, field: "id" };
        }
        ctx.logger.warn({ driver: params.id, action: name, by: sub }, `driver ${name} asked from the API`);
        const state = ctx.drivers.status().find((d) => d.id === params.id)?.state ?? "Shutdown";
        return { id: params.id, action: name, state };
      });
  const actionDoc = (summary: string) => ({
    params: t.Object({ id: t.String({ description: "the driver's id (drivers.yml)" }) }),
    response: { 200: ActionAnswer, ...errorAnswers(401, 403, 404) },
    detail: { tags: ["operations"], summary },
  });
  return new Elysia({ name: "drivers" })
    .get(
      "/api/drivers",
      ({ request, set }) =>
        read(request, set, () => {
          const health = tagHealthByDriver(ctx);
          return ctx.drivers.status().map((d) => ({
            id: d.id,
            type: d.type,
            state: d.state,
            since: new Date(d.since).toISOString(),
            restarts: d.restarts,
            errors: d.errors,
            framesSent: d.framesSent,
            framesRejected: d.framesRejected,
            framesPerSecond: rateOf(ctx, d.id, d.framesSent),
            tags: health.get(d.id)?.total ?? 0,
            badTags: health.get(d.id)?.bad ?? 0,
            lastError: d.lastError ?? null,
            advice: driverAdvice(d.state, d.lastError, health.get(d.id), onSerialLine(ctx, d.id)),
          }));
        }),
      {
        response: { 200: t.Array(DriverView), ...errorAnswers(401, 403) },
        detail: { tags: ["operations"], summary: "Drivers: state, last error in plain words with what to do, restarts, poll statistics (JWT scope read)" },
      },
    )
    .post("/api/drivers/:id/restart", action("restart", (id) => ctx.drivers.restart(id)), actionDoc("Restarts a driver now (JWT scope admin)"))
    .post("/api/drivers/:id/pause", action("pause", (id) => ctx.drivers.pause(id)), actionDoc("Stops a driver until resumed; its tags turn Bad_OutOfService (JWT scope admin)"))
    .post("/api/drivers/:id/resume", action("resume", (id) => ctx.drivers.restart(id)), actionDoc("Starts a paused driver again (JWT scope admin)"));
}
