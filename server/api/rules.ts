// The user rules API (bridges/rules/scripts.ts): list with state, runs and time per run (scope read);
// edit with syntax check, enable/disable and dry run (scope admin: a rule is code the gateway runs, and a
// dry run runs any text over every tenant's history). A rule that does not load is answered 400
// `invalid_rule` with its file and line in the message and `line` beside.
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { DryRunRequest, DryRunResult, PutRuleBody, RuleDetail, RuleView } from "../../schemas/rules.ts";
import { RulesError, type RulesService } from "../../bridges/rules/scripts.ts";
import { AuthError, authOf, type Principal } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { parseTimeParam } from "./params.ts";
import { jwtReadAuthorizer } from "./query.ts";

const RuleError = t.Object({ error: t.String(), message: t.String(), field: t.Union([t.String(), t.Null()]), line: t.Optional(t.Union([t.Number(), t.Null()])) });
const Name = t.Object({ name: t.String({ description: "the rule's name: its file rules/<name>.js" }) });

const STATUS: Record<RulesError["code"], number> = { unknown_rule: 404, invalid_rule: 400, invalid_name: 400 };

export function rulesApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);
  const readAuth = jwtReadAuthorizer(ctx, verifier);
  const rules = (): RulesService => {
    const svc = ctx.services?.().find((s) => s.name === "rules") as RulesService | undefined;
    if (!svc) throw new RulesError("unknown_rule", "the rules service is not running");
    return svc;
  };
  const admin = async (request: Request): Promise<Principal> => {
    if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", "gateway.yml configures no auth keys: rule changes are refused");
    const p = await verifier.verifyRequest(request);
    if (!p.scopes.includes("admin")) throw new AuthError(403, "insufficient_scope", "the token has no 'admin' scope");
    return p;
  };
  /** Runs `fn`, answering auth and rule errors in the API's error shape. */
  const answer = async <T>(set: { status?: number | string }, fn: () => Promise<T>) => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof AuthError) return ((set.status = e.status), { error: e.code, message: e.message, field: null });
      if (e instanceof RulesError) {
        set.status = STATUS[e.code];
        return { error: e.code, message: e.message, field: e.code === "invalid_rule" ? "source" : "name", line: e.line };
      }
      throw e;
    }
  };
  const errors = { 400: RuleError, 401: RuleError, 403: RuleError, 404: RuleError };
  return new Elysia({ name: "rules" })
    .get("/api/rules", ({ request, set }) => answer(set, async () => (await readAuth(request), rules().list())), {
      response: { 200: t.Array(RuleView), ...errorAnswers(401, 403, 404) },
      detail: { tags: ["rules"], summary: "User rules with state, last error, runs and time per run (JWT scope read)" },
    })
    .get(
      "/api/rules/:name",
      ({ request, params, set }) =>
        answer(set, async () => {
          await readAuth(request);
          const r = rules().get(params.name);
          if (!r) throw new RulesError("unknown_rule", `no rule '${params.name}'`);
          return r;
        }),
      { params: Name, response: { 200: RuleDetail, ...errors }, detail: { tags: ["rules"], summary: "One rule with its text (JWT scope read)" } },
    )
    .put(
      "/api/rules/:name",
      ({ request, params, body, set }) =>
        answer(set, async () => {
          const who = await admin(request);
          const view = await rules().put(params.name, body.source);
          ctx.logger.info({ rule: params.name, by: who.sub }, "rule saved");
          return view;
        }),
      { params: Name, body: PutRuleBody, response: { 200: RuleView, ...errors }, detail: { tags: ["rules"], summary: "Checks (syntax, meta, tags), saves rules/<name>.js and loads it (JWT scope admin)" } },
    )
    .post(
      "/api/rules/:name/enable",
      ({ request, params, set }) => answer(set, async () => rules().setEnabled(params.name, true, (await admin(request)).sub)),
      { params: Name, response: { 200: RuleView, ...errors }, detail: { tags: ["rules"], summary: "Enables a rule; it starts at the head of the log (JWT scope admin)" } },
    )
    .post(
      "/api/rules/:name/disable",
      ({ request, params, set }) => answer(set, async () => rules().setEnabled(params.name, false, (await admin(request)).sub)),
      { params: Name, response: { 200: RuleView, ...errors }, detail: { tags: ["rules"], summary: "Disables a rule (recorded in the log; JWT scope admin)" } },
    )
    .post(
      "/api/rules/:name/dry-run",
      ({ params, body, set, request }) =>
        answer(set, async () => {
          await admin(request);
          const toMs = parseTimeParam(body?.to, "to");
          const fromMs = parseTimeParam(body?.from, "from");
          // the request's signal aborts when the client disconnects: the run stops instead of going on for nobody
          return rules().dryRun(params.name, { ...(body?.source !== undefined ? { source: body.source } : {}), ...(fromMs !== undefined ? { fromMs } : {}), ...(toMs !== undefined ? { toMs } : {}), signal: request.signal });
        }),
      {
        params: Name,
        body: t.Optional(DryRunRequest),
        response: { 200: DryRunResult, ...errors },
        detail: { tags: ["rules"], summary: "What the rule (saved, or the text given) would have done over recorded history (default the last hour); no side effects (JWT scope admin)" },
      },
    );
}
