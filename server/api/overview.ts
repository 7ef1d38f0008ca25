// GET /api/overview (read): what the console's first page shows, in one answer polled every second or
// two: throughput and commit latency now (../throughput.ts), the log (head, size on disk, queue), the
// MQTT uplink (connected, backlog, drain ETA), drivers by state, and the readiness verdict with its
// reasons, and the count of active alarms that annunciate (null when no alarm engine runs: the page hides the card).
import { statSync } from "node:fs";
import { join } from "node:path";
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import type { GatewayContext } from "../context.ts";
import { readiness } from "../readiness.ts";
import { tagHealthByDriver } from "../tag-health.ts";
import { throughputOf } from "../throughput.ts";
import { alarmSummary } from "./alarms.ts";
import { guarded } from "./console-auth.ts";

const OverviewAnswer = t.Object({
  gatewayId: t.String(),
  uptimeSeconds: t.Number(),
  status: t.String({ description: "readiness: ok | degraded | down; down when no driver reads (a running driver whose tags all read Bad counts as not reading: a hung device)" }),
  reasons: t.Array(t.String()),
  framesPerSecond: t.Number({ description: "frames committed per second over the last 10 s" }),
  commitLatencyMs: t.Union([t.Object({ p50: t.Number(), p99: t.Number(), max: t.Number() }), t.Null()]),
  log: t.Object({ head: t.Number(), sizeBytes: t.Number(), queueDepth: t.Number(), paused: t.Boolean(), degraded: t.Boolean() }),
  uplink: t.Union([
    t.Object({
      connected: t.Boolean(),
      url: t.String(),
      backlogFrames: t.Number(),
      lagSeconds: t.Number(),
      drainFramesPerSecond: t.Number(),
      drainEtaSeconds: t.Union([t.Number(), t.Null()], { description: "null: not draining (disconnected or no backlog)" }),
    }),
    t.Null(),
  ]),
  drivers: t.Array(t.Object({ id: t.String(), state: t.String(), tags: t.Number(), badTags: t.Number({ description: "tags whose latest value is Bad" }) })),
  alarms: t.Union([t.Object({ active: t.Number() }), t.Null()]),
});

function sizeOnDisk(dataDir: string): number {
  let bytes = 0;
  for (const f of ["log.duckdb", "log.duckdb.wal"]) {
    try {
      bytes += statSync(join(dataDir, f)).size;
    } catch {
      // no WAL between checkpoints
    }
  }
  return bytes;
}

interface UplinkDoc {
  connected?: boolean;
  url?: string;
  lagFrames?: number;
  lagSeconds?: number;
  cursor?: number;
}

export function overviewApi(ctx: GatewayContext) {
  const read = guarded(ctx, "read");
  const window = throughputOf(ctx.log); // listening from the API's start, so the first look has figures
  return new Elysia({ name: "overview" }).get(
    "/api/overview",
    ({ request, set }) =>
      read(request, set, () => {
        const services = ctx.services?.() ?? [];
        const { doc } = readiness(ctx, services);
        const now = window.now();
        const mqtt = services.find((s) => s.name === "mqtt-north")?.status?.() as UplinkDoc | undefined;
        let uplink = null;
        if (mqtt) {
          const backlog = mqtt.lagFrames ?? 0;
          const rate = window.drainRate("mqtt-north", mqtt.cursor ?? 0);
          uplink = {
            connected: mqtt.connected ?? false,
            url: mqtt.url ?? "",
            backlogFrames: backlog,
            lagSeconds: mqtt.lagSeconds ?? 0,
            drainFramesPerSecond: rate,
            drainEtaSeconds: backlog > 0 && rate > 0 && mqtt.connected ? backlog / rate : null,
          };
        }
        // readiness (server/readiness.ts) already names a running driver whose tags all read Bad
        const health = tagHealthByDriver(ctx);
        return {
          gatewayId: ctx.config.gateway.gatewayId,
          uptimeSeconds: Math.round(process.uptime()),
          status: doc.status,
          reasons: doc.reasons,
          framesPerSecond: now.framesPerSecond,
          commitLatencyMs: now.commitLatencyMs,
          log: { head: ctx.log.head, sizeBytes: sizeOnDisk(ctx.config.gateway.dataDir), queueDepth: ctx.log.queueDepth, paused: ctx.log.isPaused, degraded: ctx.log.isDegraded },
          uplink,
          drivers: ctx.drivers.status().map((d) => ({ id: d.id, state: d.state, tags: health.get(d.id)?.total ?? 0, badTags: health.get(d.id)?.bad ?? 0 })),
          alarms: alarmSummary(ctx),
        };
      }),
    {
      response: { 200: OverviewAnswer, ...errorAnswers(401, 403) },
      detail: { tags: ["operations"], summary: "The console's overview: throughput, commit latency, log, uplink with drain ETA, drivers, readiness (JWT scope read)" },
    },
  );
}
