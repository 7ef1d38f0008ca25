// Alarms over REST: GET /api/alarms (the annunciated list with filters; scope read), and the operator's
// actions POST /api/alarms/:id/ack | shelve | unshelve (scope write), each recorded in the log as a
// transition event with the token's sub as actor (bridges/rules/alarms.ts). An alarm on a tag the token
// cannot see answers as one that does not exist (404). History is SQL over the `alarms` view.
import { Elysia, t } from "elysia";
import { AlarmEngine, AlarmNotFound } from "../../bridges/rules/alarms.ts";
import { PRIORITIES, type AlarmFilter } from "../../bridges/rules/alarm-table.ts";
import { errorAnswers } from "../../schemas/api.ts";
import { AlarmState, type AlarmPriority } from "../../schemas/index.ts";
import { LogClosedError, LogDegradedError, CommitError } from "../../storage/index.ts";
import { AuthError, authOf, authPlugin, requireScope, tagMatcher, type Principal } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { InvalidParam } from "./params.ts";

/** The alarm engine is not running (it failed to start, or the gateway stops). */
class AlarmsUnavailable extends Error {
  override name = "AlarmsUnavailable";
}

/** Longest shelving an operator may ask for: a week (an alarm shelved for good is a disabled alarm). */
export const MAX_SHELVE_MS = 7 * 24 * 3600 * 1000;

const STATES = ["annunciated", "active", "unacked", "shelved", "all"] as const;

export const ShelveBody = t.Object({
  durationMs: t.Integer({ minimum: 1000, maximum: MAX_SHELVE_MS, description: "how long the alarm stays shelved (1 s .. 7 days)" }),
  reason: t.String({ minLength: 1, maxLength: 500, description: "why (recorded in the transition event)" }),
});

const IdParam = t.Object({ id: t.String({ minLength: 1, description: "alarm id, percent-encoded (e.g. boiler%2Ftemp%3AHH)" }) });

/** The gateway's alarm engine (a started service), or null when none runs. */
export function alarmEngineOf(ctx: GatewayContext): AlarmEngine | null {
  return (ctx.services?.().find((s) => s instanceof AlarmEngine) as AlarmEngine | undefined) ?? null;
}

/** For the overview: active alarms that annunciate (not shelved), every tenant's; null without an engine. */
export function alarmSummary(ctx: GatewayContext): { active: number } | null {
  const e = alarmEngineOf(ctx);
  if (!e) return null;
  const { active } = e.counts();
  return { active: active.critical + active.high + active.medium + active.low };
}

function parseFilter(q: { priority?: string; tag?: string; state?: string }): AlarmFilter {
  const f: AlarmFilter = {};
  if (q.priority) {
    const ps = q.priority.split(",").map((p) => p.trim());
    const bad = ps.find((p) => !PRIORITIES.includes(p as AlarmPriority));
    if (bad !== undefined) throw new InvalidParam("priority", `unknown priority '${bad.slice(0, 40)}' (expected ${PRIORITIES.join(", ")}, comma-separated)`);
    f.priority = ps as AlarmPriority[];
  }
  if (q.tag) f.tagPrefix = q.tag;
  if (q.state) {
    if (!STATES.includes(q.state as (typeof STATES)[number])) throw new InvalidParam("state", `unknown state '${q.state.slice(0, 40)}' (expected ${STATES.join(", ")})`);
    f.state = q.state as AlarmFilter["state"];
  }
  return f;
}

export function alarmsApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);

  const fail = (set: { status?: number | string }, e: unknown) => {
    if (e instanceof AuthError) return ((set.status = e.status), { error: e.code, message: e.message, field: null });
    if (e instanceof AlarmNotFound) return ((set.status = 404), { error: "unknown_alarm", message: e.message, field: "id" });
    if (e instanceof AlarmsUnavailable) return ((set.status = 503), { error: "alarms_unavailable", message: e.message, field: null });
    if (e instanceof LogDegradedError || e instanceof CommitError || e instanceof LogClosedError) {
      set.status = 503;
      return { error: "log_unavailable", message: `not recorded, nothing changed: ${e.message}`, field: null };
    }
    throw e;
  };
  const authenticate = async (principal: () => Promise<Principal>, scope: "read" | "write"): Promise<Principal> => {
    if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): alarms are refused");
    const who = await principal();
    const denied = requireScope(who, scope);
    if (denied) throw denied;
    return who;
  };
  /** Whether a token sees an alarm: a tag alarm by its tag's tenant and the `tags` claim; one without a tag (a rule's) by every reader. */
  const visible = (who: Principal) => {
    const covers = tagMatcher(who.tags);
    return (a: AlarmState) => {
      if (a.tag === undefined) return true;
      const v = ctx.catalog.get(a.tag);
      return v !== undefined && v.tenant === who.tenant && covers(a.tag);
    };
  };
  const engine = (): AlarmEngine => {
    const e = alarmEngineOf(ctx);
    if (!e) throw new AlarmsUnavailable("the alarm engine is not running");
    return e;
  };
  /** The alarm for an operator's action: unknown and invisible ones alike are 404. */
  const target = (who: Principal, id: string) => {
    const e = engine();
    const a = e.known(id);
    if (a && !visible(who)(a)) throw new AlarmNotFound(id);
    return e;
  };
  const action = {
    params: IdParam,
    response: { 200: AlarmState, ...errorAnswers(400, 401, 403, 404, 503) },
  };

  return new Elysia({ name: "alarms" })
    .use(authPlugin(verifier))
    .get(
      "/api/alarms",
      async ({ query, set, principal }) => {
        try {
          const who = await authenticate(principal, "read");
          const filter = parseFilter(query);
          return engine().list(filter).filter(visible(who));
        } catch (e) {
          return fail(set, e);
        }
      },
      {
        query: t.Object({
          priority: t.Optional(t.String({ description: "comma-separated: critical, high, medium, low" })),
          tag: t.Optional(t.String({ description: "only alarms whose tag starts with this" })),
          state: t.Optional(t.String({ description: "annunciated (default: active or unacknowledged, not shelved) | active | unacked | shelved | all" })),
        }),
        response: { 200: t.Array(AlarmState), ...errorAnswers(400, 401, 403, 503) },
        detail: {
          tags: ["alarms"],
          summary: "Alarms, highest priority then newest first (JWT scope read)",
          description: "Times are microseconds since the epoch. History: POST /api/query with `SELECT * FROM alarms WHERE id = '...' ORDER BY seq`.",
        },
      },
    )
    .post(
      "/api/alarms/:id/ack",
      async ({ params, set, principal }) => {
        try {
          const who = await authenticate(principal, "write");
          return await target(who, params.id).ack(params.id, who.sub);
        } catch (e) {
          return fail(set, e);
        }
      },
      { ...action, detail: { tags: ["alarms"], summary: "Acknowledge an alarm (JWT scope write; the token's sub is recorded as actor; acknowledging twice changes nothing)" } },
    )
    .post(
      "/api/alarms/:id/shelve",
      async ({ params, body, set, principal }) => {
        try {
          const who = await authenticate(principal, "write");
          return await target(who, params.id).shelve(params.id, who.sub, body.durationMs, body.reason);
        } catch (e) {
          return fail(set, e);
        }
      },
      { ...action, body: ShelveBody, detail: { tags: ["alarms"], summary: "Shelve an alarm for durationMs: it does not annunciate until then, and is unshelved at expiry with an event (JWT scope write)" } },
    )
    .post(
      "/api/alarms/:id/unshelve",
      async ({ params, set, principal }) => {
        try {
          const who = await authenticate(principal, "write");
          return await target(who, params.id).unshelve(params.id, who.sub);
        } catch (e) {
          return fail(set, e);
        }
      },
      { ...action, detail: { tags: ["alarms"], summary: "End a shelving early (JWT scope write)" } },
    );
}
