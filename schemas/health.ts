// The readiness document (GET /readyz): what each part of the gateway says of itself, and the verdict.
// The console reads it; the route validates its answer against it and documents it (OpenAPI).
import { Type, type Static } from "@sinclair/typebox";

export const HealthState = Type.Union([Type.Literal("ok"), Type.Literal("degraded"), Type.Literal("down")], {
  description: "ok: doing its job; degraded: doing it with a problem an operator should know; down: not doing it",
});
export type HealthState = Static<typeof HealthState>;

/** What any component says of itself; components add their details (counts, lag ...). */
export const ComponentHealth = Type.Object(
  { state: HealthState, reasons: Type.Array(Type.String(), { description: "sentences for people, empty when ok" }) },
  { additionalProperties: true },
);

/**
 * What a part of the gateway says of itself (Service.status(), bridges' status()): "ok" working,
 * "degraded" working with a problem an operator should know, "down" not doing its job; `reasons` are
 * sentences for people; the other fields are details. The TypeScript face of ComponentHealth.
 */
export interface ComponentStatus {
  state: HealthState;
  reasons: string[];
  [detail: string]: unknown;
}

export const LogHealthDoc = Type.Object({
  state: HealthState,
  reasons: Type.Array(Type.String()),
  head: Type.Integer({ description: "offset of the last committed frame" }),
  queueDepth: Type.Integer({ description: "frames accepted, not yet committed" }),
  paused: Type.Boolean({ description: "producers are paused (backpressure or degraded)" }),
  degraded: Type.Boolean({ description: "commits fail for a reason that can pass (disk full ...); retried" }),
  reason: Type.Union([Type.String(), Type.Null()], { description: "the last commit failure while degraded" }),
  degradedSince: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  failedCommits: Type.Integer({ description: "failed attempts since the last commit that succeeded" }),
  lastCommitAt: Type.String({ format: "date-time" }),
  commitsStalled: Type.Boolean({ description: "frames queued and no commit for health.commitStallSeconds" }),
  reopens: Type.Integer({ description: "times the database was reopened to recover" }),
});

export const DriverHealth = Type.Object({
  id: Type.String(),
  type: Type.String(),
  state: Type.String({ description: "Loading | Init | Connected | Active | Error | Backoff | Fault | Shutdown" }),
  restarts: Type.Integer(),
  errors: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
});

export const ConsumerHealth = Type.Object({
  name: Type.String(),
  state: Type.String({ description: "starting | running | retrying | stopped" }),
  position: Type.Integer(),
  head: Type.Integer(),
  lagFrames: Type.Integer(),
  lagSeconds: Type.Number(),
  errors: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
});

export const Readiness = Type.Object(
  {
    status: HealthState,
    reasons: Type.Array(Type.String(), { description: "every component's reasons, prefixed with its name" }),
    gatewayId: Type.String(),
    checkedAt: Type.String({ format: "date-time" }),
    components: Type.Object({
      log: LogHealthDoc,
      drivers: Type.Object({ state: HealthState, reasons: Type.Array(Type.String()), drivers: Type.Array(DriverHealth) }),
      consumers: Type.Object({ state: HealthState, reasons: Type.Array(Type.String()), consumers: Type.Array(ConsumerHealth) }),
      services: Type.Record(Type.String(), ComponentHealth, { description: "each started service that reports a status (bridges ...)" }),
    }),
  },
  { $id: "readiness", description: "GET /readyz: HTTP 200 when status is ok, 503 otherwise" },
);
export type Readiness = Static<typeof Readiness>;
