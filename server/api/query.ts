// History over HTTP: POST /api/query (sandboxed SQL, JSON/CSV/Arrow/Parquet), GET /api/tags/:tag/history
// (time buckets for charts), GET /api/frames (replay by offset) and the WebSocket /api/stream (live
// frames from an offset, gapless: one supervised LogConsumer per connection, so a read error is retried,
// not the end of the stream; it ends at its token's exp, or when a reload revokes its key: close 4401
// with the reason). Every route needs a JWT with the `read` scope; when the catalog
// has more than one tenant, a token sees only its tenant's tags, and a token with a `tags` claim only
// the catalog tags its patterns cover (in SQL as the list of those tags, resolved per request).
import { Elysia, t } from "elysia";
import { consume, delay, ParquetExporter, QueryBusy, QueryError, QueryRefused, QueryStopping, QueryTimeout, ResultTooLarge, type EventLog, type LogConsumer } from "../../storage/index.ts";
import { documented, documentedErrors, errorAnswers, FramesAnswer, HistoryAnswer, QueryAnswer, QueryBody } from "../../schemas/api.ts";
import type { Logged } from "../../schemas/index.ts";
import { AuthError, authOf, requireScope, tagMatcher, type LiveVerifier } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { historyOf } from "../history.ts";
import { InvalidParam, parseDurationParam, parseTagParam, parseTimeParam } from "./params.ts";
import { CONTENT_TYPE, encodeResult, pickFormat, type Format } from "./query-format.ts";
import { spoolBody } from "./query-spool.ts";

/**
 * JSON.stringify for frames (/api/frames, /api/stream) with GET /api/tags's rule for values (tags.ts
 * jsonValue): 64-bit integers as decimal strings, NaN and infinities as "NaN", "Infinity", "-Infinity"
 * (JSON.stringify alone made them null: a Good frame without a value).
 */
export const apiJsonStringify = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : typeof x === "number" && !Number.isFinite(x) ? String(x) : x));

/** Who reads: the tenant whose tags they see (null: every tenant) and their tag patterns (null: every tag). */
export interface Reader {
  sub: string;
  tenant: string | null;
  tags: string[] | null;
  /** when the credentials expire (epoch ms); a stream ends then. Absent: they do not expire */
  expiresAtMs?: number;
}

/**
 * Checks a request's credentials and says who reads. Throws AuthError. Given the Request, its token is
 * verified once for the whole request (LiveVerifier.verifyRequest); an Authorization value (a stream's
 * token, checked again after a reload) is verified each time.
 */
export type ReadAuthorizer = (credentials: Request | string | undefined) => Promise<Reader>;

/** The gateway's read check: a valid JWT with scope `read`; tenant filtering when tenants are configured. */
export function jwtReadAuthorizer(ctx: GatewayContext, verifier: LiveVerifier = authOf(ctx)): ReadAuthorizer {
  return async (credentials) => {
    if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): reads are refused");
    const p = await (credentials instanceof Request ? verifier.verifyRequest(credentials) : verifier.verifyHeader(credentials));
    const denied = requireScope(p, "read");
    if (denied) throw denied;
    return { sub: p.sub, tenant: tenantsConfigured(ctx) ? p.tenant : null, tags: p.tags, expiresAtMs: p.exp * 1000 };
  };
}

const tenantsConfigured = (ctx: GatewayContext) => new Set(ctx.catalog.all().map((v) => v.tenant)).size > 1;

const Agg = t.Union([t.Literal("avg"), t.Literal("min"), t.Literal("max"), t.Literal("last"), t.Literal("first"), t.Literal("count"), t.Literal("sum")]);
const AGG_SQL = { avg: "avg(value)", min: "min(value)", max: "max(value)", sum: "sum(value)", count: "count(*)", last: "arg_max(value, ts_us)", first: "arg_min(value, ts_us)" };

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** A request's own `tags=a,line1/**` filter (the token's pattern syntax); null when absent or empty. */
const patternsParam = (s: string | undefined): string[] | null => {
  const list = (s ?? "").split(",").map((x) => x.trim()).filter(Boolean);
  return list.length ? list : null;
};

/**
 * The catalog tags a reader may see (its tenant's, covered by its patterns), or null when the token
 * has no `tags` claim (then the tenant filter alone applies). Resolved per request: the catalog is
 * finite and may change on reload, and SQL gets a plain list instead of translated globs.
 */
export function readableTags(ctx: GatewayContext, who: Reader): string[] | null {
  if (who.tags === null) return null;
  const covers = tagMatcher(who.tags);
  return ctx.catalog
    .all()
    .filter((v) => (who.tenant === null || v.tenant === who.tenant) && covers(v.tag))
    .map((v) => v.tag);
}

/** Whether a reader may see `tag` at all: the same rule as readableTags, for one tag. */
function mayRead(ctx: GatewayContext, who: Reader, tag: string): boolean {
  if (who.tenant === null && who.tags === null) return true;
  const v = ctx.catalog.get(tag);
  return v !== undefined && (who.tenant === null || v.tenant === who.tenant) && tagMatcher(who.tags)(tag);
}

/**
 * A download's headers: a file name to save it as, and what it holds, X-Truncated saying whether the row
 * limit or the byte budget cut it (neither Parquet, CSV nor an Arrow stream has room for "cut").
 */
const downloadHeaders = (format: Exclude<Format, "json">, bytes: number, what: { rowCount: number; truncated: boolean }) => ({
  "content-type": CONTENT_TYPE[format],
  "content-length": String(bytes),
  "content-disposition": `attachment; filename="query-${new Date().toISOString().slice(0, 19).replaceAll(":", "")}.${format}"`,
  "x-row-count": String(what.rowCount),
  "x-truncated": String(what.truncated),
});

/** Maps any failure of a route to a status and a JSON body with a reason. */
function failure(e: unknown, set: { status?: number | string }) {
  if (e instanceof AuthError) return ((set.status = e.status), { error: e.code, message: e.message, field: null });
  if (e instanceof QueryRefused) return ((set.status = 403), { error: "query_refused", message: e.message, field: "sql" });
  if (e instanceof QueryStopping) return ((set.status = 503), { error: "gateway_stopping", message: e.message, field: null });
  if (e instanceof QueryTimeout) return ((set.status = 408), { error: "query_timeout", message: e.message, field: null });
  if (e instanceof QueryBusy) {
    set.status = 429;
    (set as { headers?: Record<string, string> }).headers ??= {};
    (set as { headers: Record<string, string> }).headers["retry-after"] = String(e.retryAfterSec);
    return { error: "too_many_queries", message: e.message, field: null, retryAfterSec: e.retryAfterSec };
  }
  if (e instanceof ResultTooLarge) {
    return ((set.status = 422), { error: "result_value_too_large", message: e.message, field: "sql", column: e.column, bytes: e.bytes, maxBytes: e.maxBytes });
  }
  if (e instanceof QueryError) return ((set.status = 400), { error: "invalid_query", message: e.message, field: "sql" });
  // InvalidParam and the rest: the API's onError (one shape, { error, message, field })
  throw e;
}

/**
 * The frames a reader may see, as the SQL views show them: with a tenant or a `tags` claim, only
 * frames of catalog tags of that tenant covered by the claim; frames without a tag (operator events)
 * only when neither restricts the reader. `only` (the request's own patterns) narrows further.
 */
function frameFilter(ctx: GatewayContext, who: Reader, only: string[] | null) {
  const isRestricted = who.tenant !== null || who.tags !== null;
  // compiled once per request or stream: the stream calls this for every frame
  const byClaim = tagMatcher(who.tags);
  const byRequest = tagMatcher(only);
  return (f: Logged): boolean => {
    const tag = "tag" in f ? f.tag : undefined;
    if (tag === undefined) return !isRestricted && only === null;
    if (isRestricted) {
      const v = ctx.catalog.get(tag);
      if (v === undefined || (who.tenant !== null && v.tenant !== who.tenant) || !byClaim(tag)) return false;
    }
    return byRequest(tag);
  };
}

export function queryApi(ctx: GatewayContext, authorize: ReadAuthorizer = jwtReadAuthorizer(ctx)) {
  const engine = () => {
    const h = historyOf(ctx);
    if (!h) throw new QueryError("the history service is not running");
    return h;
  };
  const log: EventLog = ctx.log;
  return new Elysia({ name: "query" })
    .post(
      "/api/query",
      async ({ body, headers, set, request }) => {
        const started = performance.now();
        const h = engine();
        try {
          const who = await authorize(request);
          const format = pickFormat(body.format, headers.accept);
          const ro = { tenant: who.tenant, tags: readableTags(ctx, who), maxRows: body.limit, timeoutMs: body.timeoutMs, signal: request.signal };
          if (format === "parquet") {
            const file = await h.parquet.write(await h.engine.runChunks(body.sql, ro), h.engine.maxResultBytes);
            h.queries.inc({ result: "ok" });
            h.queryDuration.observe(performance.now() - started);
            return new Response(ParquetExporter.stream(file.path), { headers: downloadHeaders("parquet", file.bytes, { rowCount: file.rows, truncated: file.truncated }) });
          }
          const result = await h.engine.run(body.sql, ro);
          const stream = await encodeResult(result, format);
          if (format !== "json") {
            // a file download: its headers say whether the row limit or the byte budget cut it
            const spooled = await spoolBody(stream, h.parquet.dir);
            h.queries.inc({ result: "ok" });
            h.queryDuration.observe(performance.now() - started);
            return new Response(spooled.body, { headers: downloadHeaders(format, spooled.bytes, result) });
          }
          // JSON streams: `rowCount` and `truncated` end its body
          h.queries.inc({ result: "ok" });
          const timed = stream.pipeThrough(
            new TransformStream({ flush: () => void h.queryDuration.observe(performance.now() - started) }),
          );
          return new Response(timed, { headers: { "content-type": CONTENT_TYPE[format] } });
        } catch (e) {
          h.queries.inc({ result: e instanceof Error ? e.name : "error" });
          return failure(e, set);
        }
      },
      {
        body: QueryBody,
        detail: {
          tags: ["history"],
          summary: "Read-only SQL over the log (JWT scope read). JSON by default; CSV, Arrow IPC stream or Parquet file by format or Accept.",
          description: "Example: `SELECT seq, ts, tag, value FROM data WHERE tag = 'line1/boiler/temperature' ORDER BY seq DESC LIMIT 10` (`seq` is the log offset; `\"offset\"` quoted also works).",
          responses: {
            200: documented("the result: JSON streamed (rowCount and truncated end it); CSV, Arrow and Parquet read whole first and sent as an attachment with X-Row-Count and X-Truncated (true when the row limit or query.maxResultBytes cut it)", {
              "application/json": QueryAnswer,
              "text/csv": null,
              "application/vnd.apache.arrow.stream": null,
              "application/vnd.apache.parquet": null,
            }),
            ...documentedErrors({
              400: "invalid SQL or request",
              401: "no or bad token",
              403: "scope missing, or a statement the sandbox refuses",
              408: "over the time limit (waiting for a query slot included)",
              422: "a single value larger than query.maxResultBytes (column, bytes, maxBytes in the body)",
              429: "every query slot and queue place taken (Retry-After header; retryAfterSec in the body)",
              503: "the gateway is stopping",
            }),
          },
        },
      },
    )
    .get(
      "/api/tags/:tag/history",
      async ({ params, query, set, request }) => {
        try {
          const who = await authorize(request);
          // decoded once by the router (a second decode would turn %25 into an error); raw slashes were
          // folded into this one segment before routing (tag-path.ts)
          const tag = parseTagParam(params.tag);
          // another tenant's tag, or one the token's patterns do not cover, does not exist for this reader
          if (!mayRead(ctx, who, tag)) return ((set.status = 404), { error: "unknown_tag", message: `no tag '${tag}'`, field: "tag" });
          const to = parseTimeParam(query.to, "to", Date.now());
          const from = parseTimeParam(query.from, "from", Math.max(0, to - 3_600_000));
          if (from >= to) throw new InvalidParam("from", "must be before to");
          const stepMs = query.step === undefined ? Math.max(1000, Math.ceil((to - from) / 500 / 1000) * 1000) : parseDurationParam(query.step, "step");
          if ((to - from) / stepMs > 100_000) throw new InvalidParam("step", `${stepMs} ms over this range gives more than 100000 buckets`);
          const agg = query.agg ?? "avg";
          const sql = `SELECT epoch_ms(time_bucket(to_microseconds(${Math.round(stepMs * 1000)}::BIGINT), ts, make_timestamp(${from * 1000}))) AS t, ${AGG_SQL[agg]} AS v
            FROM data_all WHERE tag = ${sqlString(tag)} AND ts_us >= ${from * 1000} AND ts_us < ${to * 1000} GROUP BY 1 ORDER BY 1`;
          const r = await engine().engine.all(sql, { tenant: who.tenant, tags: readableTags(ctx, who) });
          return {
            tag,
            agg,
            stepMs,
            from: new Date(from).toISOString(),
            to: new Date(to).toISOString(),
            t: r.rows.map((x) => Number(x[0])),
            // a bucket whose aggregate is NaN or infinite (a NaN reading in it) has no JSON number: null
            v: r.rows.map((x) => (typeof x[1] === "bigint" ? Number(x[1]) : typeof x[1] === "number" && !Number.isFinite(x[1]) ? null : (x[1] as number | null))),
          };
        } catch (e) {
          return failure(e, set);
        }
      },
      {
        params: t.Object({ tag: t.String({ description: "the tag, with raw slashes or percent-encoded" }) }),
        query: t.Object({
          from: t.Optional(t.String({ description: "ISO time or epoch milliseconds (default: to - 1 h)" })),
          to: t.Optional(t.String({ description: "ISO time or epoch milliseconds (default: now)" })),
          step: t.Optional(t.String({ description: "bucket width: 250ms, 10s, 1m, 1h, 1d (default: about 500 buckets)" })),
          agg: t.Optional(Agg),
        }),
        response: { 200: HistoryAnswer, ...errorAnswers(400, 401, 403, 404, 408, 422, 429, 503) },
        detail: { tags: ["history"], summary: "Time-bucketed aggregate of one tag (avg|min|max|last|first|sum|count), archive included" },
      },
    )
    .get(
      "/api/frames",
      async ({ query, set, request }) => {
        try {
          const who = await authorize(request);
          const after = query.after ?? 0;
          const limit = Math.min(query.limit ?? 1000, 10_000);
          const keep = frameFilter(ctx, who, patternsParam(query.tags));
          const frames: Logged[] = [];
          let next = after;
          for await (const page of log.pages({ from: after + 1, to: after + limit, pageSize: limit })) {
            for (const f of page) if (keep(f)) frames.push(f);
            next = page[page.length - 1]!.offset;
          }
          // archived or filtered frames leave no rows: `next` still moves past them
          next = Math.max(next, Math.min(after + limit, log.head));
          return new Response(apiJsonStringify({ frames, next, head: log.head }), { headers: { "content-type": "application/json" } });
        } catch (e) {
          return failure(e, set);
        }
      },
      {
        query: t.Object({
          after: t.Optional(t.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "last offset already seen (0: from the start)" })),
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 10_000 })),
          tags: t.Optional(t.String({ description: "comma-separated tag patterns: * within one path segment, ** across segments" })),
        }),
        detail: {
          tags: ["history"],
          summary: "Committed frames after an offset (pull replay); `next` is the offset to pass as after",
          responses: {
            200: documented("a page of frames", { "application/json": FramesAnswer }),
            ...documentedErrors({ 400: "invalid query string", 401: "no or bad token", 403: "scope missing" }),
          },
        },
      },
    )
    .ws("/api/stream", {
      query: t.Object({
        // an integer offset: 1.5 or 1e300 is refused at the upgrade (400), never a stream closed 1011
        from: t.Optional(t.Numeric({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, multipleOf: 1, description: "first offset wanted (default: only new frames)" })),
        tags: t.Optional(t.String({ description: "comma-separated tag patterns: * within one path segment, ** across segments" })),
        token: t.Optional(t.String({ description: "JWT, for clients that cannot set an Authorization header" })),
      }),
      async open(ws) {
        const data = ws.data as unknown as { query: { from?: number; tags?: string; token?: string }; headers: Record<string, string | undefined> };
        const stream: Stream = { closed: false, consumer: null, timer: null, recheck: null };
        streams.set(ws.id, stream);
        const authorization = data.headers.authorization ?? (data.query.token ? `Bearer ${data.query.token}` : undefined);
        let who: Reader;
        try {
          who = await authorize(authorization);
        } catch (e) {
          endStream(ws, stream, e, "unauthorized");
          return;
        }
        if (stream.closed) return; // the client left while its token was checked
        // the stream lives as long as its credentials: it ends at the token's exp, and when a reload
        // changes the keys and the token no longer verifies (a removed key, a rotated secret)
        if (who.expiresAtMs !== undefined) expireAt(ws, stream, who.expiresAtMs);
        stream.recheck = () => void authorize(authorization).catch((e) => endStream(ws, stream, e, "credentials revoked"));
        authOf(ctx).on("change", stream.recheck);
        const keep = frameFilter(ctx, who, patternsParam(data.query.tags));
        const from = data.query.from ?? log.head + 1;
        ws.send(JSON.stringify({ hello: { from, head: log.head } }));
        const raw = ws.raw as unknown as { getBufferedAmount(): number };
        stream.consumer = consume(log, {
          name: `stream-${ws.id}`,
          from,
          logger: ctx.logger,
          handler: async (page, c) => {
            const frames = page.filter(keep);
            if (frames.length === 0) return;
            ws.send(apiJsonStringify({ frames, last: page[page.length - 1]!.offset }));
            // a slow client: the next page waits for its buffer to drain instead of buffering without bound
            while (raw.getBufferedAmount() > STREAM_BUFFER_BYTES && !c.signal.aborted) await delay(10, c.signal);
          },
        });
        // the consumer ends only when stopped (the client left) or when the log closed (the gateway stops)
        void stream.consumer.closed.then(() => {
          if (stream.closed) return;
          try {
            ws.close(1001, "the log closed");
          } catch {
            // the server itself is gone: nothing to tell the client
          }
        });
      },
      close(ws) {
        const stream = streams.get(ws.id);
        streams.delete(ws.id);
        if (!stream) return;
        releaseStream(ctx, stream);
      },
    });
}

/** Bytes a stream client may have unsent before its next page waits (bounded memory per client). */
const STREAM_BUFFER_BYTES = 4 * 1024 * 1024;

/** One WebSocket stream: its consumer (null until the token is checked), its expiry timer and key-change listener. */
interface Stream {
  closed: boolean;
  consumer: LogConsumer | null;
  timer: ReturnType<typeof setTimeout> | null;
  recheck: (() => void) | null;
}

/** WebSocket close code of a stream whose credentials are refused, expired or revoked (4000-4999: the application's). */
export const STREAM_CLOSE_UNAUTHORIZED = 4401;

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days): a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

type StreamSocket = { id: string; send(data: string): unknown; close(code?: number, reason?: string): unknown };

/** Ends the stream at `atMs` (its token's exp): a last message saying why, then close 4401 "token expired". */
function expireAt(ws: StreamSocket, stream: Stream, atMs: number): void {
  const wait = atMs - Date.now();
  stream.timer = setTimeout(
    () => (wait > MAX_TIMER_MS ? expireAt(ws, stream, atMs) : endStream(ws, stream, new AuthError(401, "token_expired", "the token has expired"), "token expired")),
    Math.max(0, Math.min(wait, MAX_TIMER_MS)),
  );
}

/** Tells the client why its credentials end the stream, and closes it with STREAM_CLOSE_UNAUTHORIZED. */
function endStream(ws: StreamSocket, stream: Stream, e: unknown, reason: string): void {
  if (stream.closed) return;
  const code = e instanceof AuthError ? e.code : "unauthorized";
  try {
    ws.send(JSON.stringify({ error: code, message: e instanceof Error ? e.message : String(e) }));
    ws.close(STREAM_CLOSE_UNAUTHORIZED, reason);
  } catch {
    // the socket is already gone: its close handler releases the stream
  }
}

function releaseStream(ctx: GatewayContext, stream: Stream): void {
  stream.closed = true;
  if (stream.timer) clearTimeout(stream.timer);
  if (stream.recheck) authOf(ctx).off("change", stream.recheck);
  void stream.consumer?.stop();
}

const streams = new Map<string, Stream>();
