// Setpoint writes over REST: PUT /api/tags/:tag appends a CmdFrame (origin rest, actor = JWT sub) and
// waits for its AckFrame (scope write); GET /api/commands/:id and GET /api/commands give status and audit
// from the log (scope read). A tag or command the token cannot see answers as one that does not exist (404).
// Every refusal leaves before anything is appended, as JSON { error, message, field? } with its status.
// A write's answer follows its ack's code through ACK_CODE_INFO (schemas/acks.ts), never its text.
import { createHash } from "node:crypto";
import { Elysia, t } from "elysia";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { documented, documentedErrors, errorAnswers } from "../../schemas/api.ts";
import { ACK_CODE_INFO, ACK_CODES, ApiError, checkWrite, CommandView, Origin, WriteBody, WriteNotDone, type AckFrame, type CmdFrame, type Logged, type Value } from "../../schemas/index.ts";
import { CommitError, LogClosedError, LogDegradedError, type CommandRecord } from "../../storage/index.ts";
import { AuthError, authOf, authorizeWrite, authPlugin, requireScope, unknownTag, type Principal } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { parseTimeParam } from "./params.ts";
import { readableTags } from "./query.ts";
import { jsonValue } from "./tags.ts";

const writeBody = TypeCompiler.Compile(WriteBody);

/** A refusal of the API: status, code and message (and the body field when there is one). */
export class CommandRejected extends Error {
  override name = "CommandRejected";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const iso = (micros: number) => new Date(micros / 1000).toISOString();

export function commandView({ cmd, ack }: { cmd: Logged<CmdFrame>; ack: Logged<AckFrame> | null }): CommandView {
  return {
    id: cmd.id,
    tag: cmd.tag,
    value: jsonValue(cmd.value),
    origin: cmd.origin,
    actor: cmd.actor,
    tenant: cmd.tenant,
    ts: iso(cmd.ts),
    expiresAt: iso(cmd.expiresAt),
    offset: cmd.offset,
    status: ack ? ack.status : "pending",
    code: ack ? ack.code : "pending",
    ack: ack && {
      ok: ack.ok,
      status: ack.status,
      code: ack.code,
      ...(ack.error === undefined ? {} : { error: ack.error }),
      ts: iso(ack.ts),
      source: ack.source,
      offset: ack.offset,
      latencyMs: Math.max(0, (ack.loggedAt - cmd.loggedAt) / 1000),
    },
  };
}

/** The error class of a write that was not done, by the HTTP status of its code. */
const NOT_DONE_CLASS: Record<number, string> = { 409: "not_written", 502: "write_failed", 504: "outcome_unknown" };

/**
 * The HTTP answer of a write whose ack is not ok: status and body from the ack's code. 409: never
 * written (expired, driver not running, busy, cannot write); 404/403/422: refused for the tag;
 * 502: the device refused; 504: outcome unknown (the body says to read the tag back before retrying).
 */
export function notDoneAnswer(ack: Logged<AckFrame>, view: CommandView): { status: number; body: WriteNotDone } {
  const info = ACK_CODE_INFO[ack.code];
  const said = ack.error ?? info.text;
  const unknown = info.applied === "unknown";
  const error = ack.code === "expired" ? "command_expired" : (NOT_DONE_CLASS[info.http] ?? "write_refused");
  // the driver's text may already say it; the advice is given once
  const message = unknown && !/may or may not/.test(said) ? `${said}. The value may or may not have been applied: read the tag back before retrying the write.` : said;
  return { status: info.http, body: { error, message, code: ack.code, applied: info.applied, command: view } };
}

/** The mapping for the OpenAPI document: each HTTP status with the codes that give it. */
function codesByStatus(): string {
  const by = new Map<number, string[]>();
  for (const c of ACK_CODES) by.set(ACK_CODE_INFO[c].http, [...(by.get(ACK_CODE_INFO[c].http) ?? []), c]);
  return [...by].sort(([a], [b]) => a - b).map(([status, codes]) => `${status}: ${codes.join(", ")}`).join("; ");
}

/**
 * The command id for an Idempotency-Key: the same tenant, actor and key always give the same id, so a
 * retried request finds its first command in the log (durably, across restarts) instead of writing twice.
 */
export function idempotentId(tenant: string, actor: string, key: string): string {
  return `idem-${createHash("sha256").update(`${tenant}\u0000${actor}\u0000${key}`).digest("hex").slice(0, 32)}`;
}

/** Reads the body up to `max` bytes; more is refused with 413 without reading the rest. */
async function readBody(request: Request, max: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (declared > max) throw new CommandRejected(413, "body_too_large", `the body has ${declared} bytes; at most ${max} are accepted`);
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new CommandRejected(413, "body_too_large", `the body is over ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseWriteBody(text: string): WriteBody {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new CommandRejected(400, "invalid_body", 'the body is not valid JSON (expected {"value": ...})');
  }
  if (writeBody.Check(raw)) return raw;
  const e = writeBody.Errors(raw).First();
  const field = e?.path.replace(/^\//, "").replaceAll("/", ".") || undefined;
  if (raw !== null && typeof raw === "object" && !Array.isArray(raw) && !("value" in raw)) throw new CommandRejected(400, "invalid_body", "the body has no 'value'", "value");
  throw new CommandRejected(400, "invalid_body", `${field ? `${field}: ` : ""}${e?.message ?? "invalid body"}`, field);
}

const sameValue = (a: Value, b: Value) => (typeof a === "bigint" || typeof b === "bigint" ? String(a) === String(b) : a === b);

export function commandsApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);
  const { metrics } = ctx;

  const fail = (set: { status?: number | string }, e: unknown, isWrite = false) => {
    if (e instanceof AuthError || e instanceof CommandRejected) {
      set.status = e.status;
      if (isWrite && (e instanceof CommandRejected || e.status !== 401)) metrics.writeRefused.inc({ reason: e.code });
      // the API's one error shape (server/api/params.ts): field null when no parameter is at fault
      return { error: e.code, message: e.message, field: (e instanceof CommandRejected && e.field) || null };
    }
    if (e instanceof LogDegradedError || e instanceof CommitError || e instanceof LogClosedError) {
      // the command could not be recorded, so nothing was written: say why, never a 500
      set.status = 503;
      metrics.writeRefused.inc({ reason: "log_unavailable" });
      return { error: "log_unavailable", message: `the write was not recorded and not executed: ${e.message}`, field: null };
    }
    throw e;
  };
  /** A verified token holding `scope`; checked before anything of the request is looked up, so the answer does not depend on it. */
  const authenticate = async (principal: () => Promise<Principal>, scope: "read" | "write"): Promise<Principal> => {
    if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): commands are refused");
    const who = await principal();
    const denied = requireScope(who, scope);
    if (denied) throw denied;
    return who;
  };
  /** The tags whose commands a token may see (its `tags` claim over the catalog), null: every tag; the tenant is checked on the command. */
  const commandTags = (who: Principal) => readableTags(ctx, { sub: who.sub, tenant: null, tags: who.tags });

  return new Elysia({ name: "commands" })
    .use(authPlugin(verifier))
    .put(
      "/api/tags/:tag",
      async ({ params, request, headers, set, principal }) => {
        try {
          const started = performance.now();
          const startedMicros = Date.now() * 1000;
          const who = await authenticate(principal, "write");
          const cfg = ctx.config.gateway.commands;
          const body = parseWriteBody(await readBody(request, cfg.maxBodyBytes));
          // decoded once by the router; raw slashes were folded into this segment (tag-path.ts)
          const name = params.tag;
          const tag = ctx.catalog.get(name);
          if (!tag) throw unknownTag(name);
          const denied = authorizeWrite(who, tag);
          if (denied) throw denied;
          const checked = checkWrite(tag, body.value);
          if (!checked.ok) {
            throw new CommandRejected(checked.code === "not_writable" ? 403 : 400, checked.code, checked.message, checked.code === "not_writable" ? undefined : "value");
          }
          if (body.ttlMs !== undefined && body.ttlMs > cfg.maxTtlMs) throw new CommandRejected(400, "invalid_body", `ttlMs ${body.ttlMs} is above the maximum ${cfg.maxTtlMs}`, "ttlMs");
          const key = headers["idempotency-key"];
          if (key !== undefined && (key.length === 0 || key.length > 200)) throw new CommandRejected(400, "invalid_idempotency_key", "Idempotency-Key must have 1 to 200 characters");
          const cmd = await ctx.commands.submit({
            tag: tag.tag,
            value: checked.value,
            origin: "rest",
            actor: who.sub,
            tenant: who.tenant,
            ttlMs: body.ttlMs ?? cfg.ttlMs,
            ...(key === undefined ? {} : { id: idempotentId(who.tenant, who.sub, key) }),
          });
          if (key !== undefined) {
            const replay = cmd.origin !== "rest" || cmd.tag !== tag.tag || !sameValue(cmd.value, checked.value) ? null : cmd;
            if (!replay) throw new CommandRejected(409, "idempotency_conflict", "this Idempotency-Key was used for a different write");
            // accepted before this request began: a retry answered with the first command
            if (cmd.ts < startedMicros) set.headers["idempotent-replayed"] = "true";
          }
          const ack = await ctx.commands.waitForAck(cmd.id, cfg.ackTimeoutMs);
          set.headers.location = `/api/commands/${encodeURIComponent(cmd.id)}`;
          metrics.restWriteLatency.observe(performance.now() - started);
          const view = commandView({ cmd, ack });
          if (!ack) {
            set.status = 202;
            return view;
          }
          if (ack.ok) return view;
          // the request was valid and recorded, but the value was not (or maybe not) applied
          const answer = notDoneAnswer(ack, view);
          set.status = answer.status;
          return answer.body;
        } catch (e) {
          return fail(set, e, true);
        }
      },
      {
        // the body is read by hand (readBody) to cap its size before it is buffered; its schema is documented below
        parse: "none",
        params: t.Object({ tag: t.String({ description: "the tag, with raw slashes or percent-encoded" }) }),
        headers: t.Object({
          "idempotency-key": t.Optional(t.String({ description: "1 to 200 characters: a retry with the same key returns the first command instead of writing twice" })),
        }),
        detail: {
          tags: ["tags"],
          summary: "Write a setpoint",
          requestBody: { required: true, ...documented('{"value": ..., "ttlMs"?}', { "application/json": WriteBody }) },
          description:
            'Body {"value": ..., "ttlMs"?}. Bearer JWT with sub, tenant and scope "write". The answer follows the ack\'s `code` (schemas/acks.ts): ' +
            `${codesByStatus()}. 200 carries the command with its ack; 202 means no ack within commands.ackTimeoutMs (poll the Location header); ` +
            "every other status after the command was recorded has { error, message, code, applied, command }: 409 never written, 502 the device refused, " +
            "504 outcome unknown: the value may or may not have been applied, read the tag back before retrying. Refusals before anything is recorded: { error, message, field? }.",
          responses: {
            200: documented("written: the command with its ack (code ok)", { "application/json": CommandView }),
            202: documented("recorded, no ack yet within commands.ackTimeoutMs: poll Location (GET /api/commands/:id)", { "application/json": CommandView }),
            ...documentedErrors({ 400: "invalid body, value or Idempotency-Key (field names it)", 401: "no or bad token", 413: "body over commands.maxBodyBytes", 503: "the log cannot record the write: nothing was written" }),
            403: documented("scope, tenant or tag claim refuses it, the tag is read-only, or (recorded) the ack refuses it", { "application/json": t.Union([ApiError, WriteNotDone]) }),
            404: documented("no such tag for this token, or (recorded) the ack says unknown tag", { "application/json": t.Union([ApiError, WriteNotDone]) }),
            409: documented("recorded, never written: expired, driver_not_running, device_busy, not_supported; or idempotency_conflict", { "application/json": t.Union([WriteNotDone, ApiError]) }),
            422: documented("recorded and refused for the tag by its driver", { "application/json": WriteNotDone }),
            502: documented("the device refused the write (device_error, device_address_error, readback_mismatch, internal_error)", { "application/json": WriteNotDone }),
            504: documented("outcome unknown (timeout_outcome_unknown, outcome_unknown_restart): read the tag back before retrying", { "application/json": WriteNotDone }),
          },
        },
      },
    )
    .get(
      "/api/commands/:id",
      async ({ params, set, principal }) => {
        try {
          const who = await authenticate(principal, "read");
          const rec = await ctx.commands.record(params.id);
          // another tenant's command, or one on a tag the token's patterns do not cover, is reported
          // as absent, not as forbidden: ids do not leak
          const tags = commandTags(who);
          if (!rec || rec.cmd.tenant !== who.tenant || (tags !== null && !tags.includes(rec.cmd.tag))) throw new CommandRejected(404, "unknown_command", `no command '${params.id}'`, "id");
          return commandView(rec);
        } catch (e) {
          return fail(set, e);
        }
      },
      {
        params: t.Object({ id: t.String() }),
        response: { 200: CommandView, ...errorAnswers(401, 403, 404, 503) },
        detail: { tags: ["commands"], summary: "A command with its ack (status and audit; JWT scope read)" },
      },
    )
    .get(
      "/api/commands",
      async ({ query, set, principal }) => {
        try {
          const who = await authenticate(principal, "read");
          // bounded to 1970..9999: 1e308 would make an Infinity that no BigInt takes
          const sinceMs = parseTimeParam(query.since, "since");
          const sinceMicros = sinceMs === undefined ? undefined : sinceMs * 1000;
          const limit = query.limit === undefined ? 100 : Number(query.limit);
          if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CommandRejected(400, "invalid_query", "limit: expected an integer 1..1000", "limit");
          const untilMs = parseTimeParam(query.until, "until");
          const tags = commandTags(who);
          const recs: CommandRecord[] = await ctx.commands.list({
            tenant: who.tenant,
            limit,
            ...(tags === null ? {} : { tags }),
            ...(query.tag ? { tag: query.tag } : {}),
            ...(sinceMicros === undefined ? {} : { sinceMicros }),
            ...(untilMs === undefined ? {} : { untilMicros: untilMs * 1000 }),
            ...(query.actor ? { actor: query.actor } : {}),
            ...(query.origin ? { origin: query.origin } : {}),
            ...(query.code ? { code: query.code } : {}),
          });
          return recs.map(commandView);
        } catch (e) {
          return fail(set, e);
        }
      },
      {
        query: t.Object({
          tag: t.Optional(t.String({ description: "only this tag" })),
          since: t.Optional(t.String({ description: "ISO time or epoch milliseconds" })),
          until: t.Optional(t.String({ description: "ISO time or epoch milliseconds: commands accepted at or before it" })),
          actor: t.Optional(t.String({ maxLength: 200, description: "only this actor (JWT sub, cert:<subject>, rule id)" })),
          origin: t.Optional(Origin),
          code: t.Optional(t.Union([...ACK_CODES, "pending"].map((c) => t.Literal(c)), { description: "only commands whose ack has this code; pending: no ack yet" })),
          limit: t.Optional(t.String({ description: "1..1000 (default 100)" })),
        }),
        response: { 200: t.Array(CommandView), ...errorAnswers(400, 401, 403, 503) },
        detail: { tags: ["commands"], summary: "Commands of the token's tenant on the tags its `tags` claim covers, newest first (JWT scope read)" },
      },
    );
}
