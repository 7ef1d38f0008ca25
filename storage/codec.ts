// How a frame maps to a row of the `log` table and back. Data frames use the typed columns only;
// commands, acks and events carry their details as JSON in `body` (they are rare, readable in SQL).
import { BIGINT, DOUBLE, DuckDBDataChunk, DuckDBVector, UINTEGER, UTINYINT, VARCHAR, type DuckDBAppender } from "@duckdb/node-api";
import type { Frame, Logged, Value } from "../schemas/frames.ts";
import { isAckCode, legacyAckCode } from "../schemas/acks.ts";

export const KIND_CODE = { data: 1, cmd: 2, ack: 3, event: 4 } as const;
export const KIND_NAME = ["", "data", "cmd", "ack", "event"] as const;

/** vtype column: which column holds the value. */
export const VT = { null: 0, number: 1, bool: 2, bigint: 3, string: 4 } as const;

export const LOG_DDL = `
CREATE TABLE IF NOT EXISTS log (
  "offset"  BIGINT   NOT NULL,
  kind      UTINYINT NOT NULL,
  ts        BIGINT   NOT NULL,
  tag       VARCHAR,
  vtype     UTINYINT NOT NULL,
  num       DOUBLE,
  str       VARCHAR,
  quality   UINTEGER NOT NULL,
  source    VARCHAR,
  body      VARCHAR,
  logged_at BIGINT   NOT NULL
)`;

export const LOG_COLUMNS = `"offset", kind, ts, tag, vtype, num, str, quality, source, body, logged_at`;

/**
 * The same columns for bulk reads: the three BIGINTs as DOUBLE, exact below 2^53 (offsets, and
 * microsecond times until the year 2255), because converting BIGINT to JS bigint and back is the
 * largest cost of a replay page.
 */
export const LOG_COLUMNS_FAST = `"offset"::DOUBLE, kind, ts::DOUBLE, tag, vtype, num, str, quality, source, body, logged_at::DOUBLE`;

/** JSON.stringify that keeps bigint exact (as a decimal string). */
export function jsonStringify(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
}

// The writer fills DuckDB data chunks column by column: one native call per chunk and column for the
// numeric columns (typed arrays), instead of eleven per row with the row appender; strings still cost
// one call each. Columns in LOG_DDL order.
const LOG_TYPES = [BIGINT, UTINYINT, BIGINT, VARCHAR, UTINYINT, DOUBLE, VARCHAR, UINTEGER, VARCHAR, VARCHAR, BIGINT];
const enum Col { Offset, Kind, Ts, Tag, VType, Num, Str, Quality, Source, Body, LoggedAt }
type Vectors = DuckDBVector[];

function setValue(v: Vectors, r: number, value: Value): void {
  switch (typeof value) {
    case "number":
      v[Col.VType]!.setItem(r, VT.number);
      v[Col.Num]!.setItem(r, value);
      v[Col.Str]!.setItem(r, null);
      return;
    case "boolean":
      v[Col.VType]!.setItem(r, VT.bool);
      v[Col.Num]!.setItem(r, value ? 1 : 0);
      v[Col.Str]!.setItem(r, null);
      return;
    case "bigint":
      // exact in `str`, approximate in `num` so that SQL aggregates still work
      v[Col.VType]!.setItem(r, VT.bigint);
      v[Col.Num]!.setItem(r, Number(value));
      v[Col.Str]!.setItem(r, value.toString());
      return;
    case "string":
      v[Col.VType]!.setItem(r, VT.string);
      v[Col.Num]!.setItem(r, null);
      v[Col.Str]!.setItem(r, value);
      return;
    default:
      v[Col.VType]!.setItem(r, VT.null);
      v[Col.Num]!.setItem(r, null);
      v[Col.Str]!.setItem(r, null);
  }
}

/** The `body` column of a frame: the details of a command, ack or event as JSON; null for data. */
function bodyOf(f: Frame): string | null {
  switch (f.kind) {
    case "data":
      return null;
    case "cmd":
      return jsonStringify({ id: f.id, origin: f.origin, actor: f.actor, tenant: f.tenant, expiresAt: f.expiresAt });
    case "ack":
      return jsonStringify({ cmd: f.cmd, ok: f.ok, status: f.status, code: f.code, error: f.error });
    case "event":
      return jsonStringify({ type: f.type, data: f.data });
  }
}

function setRow(v: Vectors, r: number, f: Frame): void {
  v[Col.Kind]!.setItem(r, KIND_CODE[f.kind]);
  v[Col.Ts]!.setItem(r, BigInt(Math.trunc(f.ts)));
  switch (f.kind) {
    case "data":
      v[Col.Tag]!.setItem(r, f.tag);
      setValue(v, r, f.value);
      v[Col.Quality]!.setItem(r, f.quality >>> 0);
      v[Col.Source]!.setItem(r, f.source);
      v[Col.Body]!.setItem(r, null);
      break;
    case "cmd":
      v[Col.Tag]!.setItem(r, f.tag);
      setValue(v, r, f.value);
      v[Col.Quality]!.setItem(r, 0);
      v[Col.Source]!.setItem(r, f.origin);
      v[Col.Body]!.setItem(r, bodyOf(f));
      break;
    case "ack":
      v[Col.Tag]!.setItem(r, f.tag);
      setValue(v, r, null);
      v[Col.Quality]!.setItem(r, f.ok ? 0 : 0x80000000);
      v[Col.Source]!.setItem(r, f.source);
      v[Col.Body]!.setItem(r, bodyOf(f));
      break;
    case "event":
      v[Col.Tag]!.setItem(r, f.tag ?? null);
      setValue(v, r, null);
      v[Col.Quality]!.setItem(r, 0);
      v[Col.Source]!.setItem(r, f.source);
      v[Col.Body]!.setItem(r, bodyOf(f));
      break;
  }
}

/**
 * The rows of a batch as JSON lines (one object a row, one row a line), for `JSON_LINES_INSERT`: the writer
 * binds the text and DuckDB splits and parses it on its own thread, so that the event loop spends ~0.1 ms
 * on a commit of a few hundred frames instead of ~1.2 ms filling and flushing an appender chunk. Lines
 * parse in about half the CPU of one JSON array unnested (1.9 vs 3.8 µs a frame at 340 frames a commit,
 * 4.6 vs 8.8 ms for 2000; a list of structs was already ~1.8x cheaper than parallel lists: measured).
 * A newline inside a string is escaped by JSON.stringify, so a line is always one row. Undefined when a
 * value has no exact JSON form (NaN, ±Infinity, -0): the appender takes that batch.
 */
export function batchJsonLines(frames: readonly Frame[]): string | undefined {
  const n = frames.length;
  const lines = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const f = frames[i]!;
    const ts = Math.trunc(f.ts);
    if (!Number.isSafeInteger(ts)) return undefined;
    const r: JsonRow = { o: i, k: KIND_CODE[f.kind], t: ts, g: null, v: VT.null, n: null, s: null, q: 0, c: null, b: null };
    let value: Value = null;
    switch (f.kind) {
      case "data":
        r.g = f.tag;
        value = f.value;
        r.q = f.quality >>> 0;
        r.c = f.source;
        break;
      case "cmd":
        r.g = f.tag;
        value = f.value;
        r.c = f.origin;
        r.b = bodyOf(f);
        break;
      case "ack":
        r.g = f.tag;
        r.q = f.ok ? 0 : 0x80000000;
        r.c = f.source;
        r.b = bodyOf(f);
        break;
      case "event":
        r.g = f.tag ?? null;
        r.c = f.source;
        r.b = bodyOf(f);
        break;
    }
    switch (typeof value) {
      case "number":
        if (!Number.isFinite(value) || Object.is(value, -0)) return undefined;
        r.v = VT.number;
        r.n = value;
        break;
      case "boolean":
        r.v = VT.bool;
        r.n = value ? 1 : 0;
        break;
      case "bigint":
        r.v = VT.bigint;
        r.n = Number(value);
        r.s = value.toString();
        break;
      case "string":
        r.v = VT.string;
        r.s = value;
        break;
    }
    lines[i] = JSON.stringify(r);
  }
  return lines.join("\n");
}

/** A row of batchJsonLines: o = index in the batch, then the log's columns (codec.ts LOG_DDL) but offset and logged_at. */
interface JsonRow {
  o: number;
  k: number;
  t: number;
  g: string | null;
  v: number;
  n: number | null;
  s: string | null;
  q: number;
  c: string | null;
  b: string | null;
}

/**
 * Inserts the rows of batchJsonLines($rows) at offsets $first + o, with commit time $at. The casts give
 * the parameters a type at PREPARE: a parameter whose type DuckDB cannot infer there (`$first + r.o`, a
 * bare `$at` in the select list) makes it bind and plan the statement again at every execution, ~0.65 ms
 * of CPU per commit (measured: 964 vs 369 µs for a 10-row batch in memory).
 */
export const JSON_LINES_INSERT = `INSERT INTO log SELECT CAST($first AS BIGINT) + r.o, r.k, r.t, r.g, r.v, r.n, r.s, r.q, r.c, r.b, CAST($at AS BIGINT) FROM (SELECT from_json(unnest(string_split($rows, chr(10))),
  '{"o":"BIGINT","k":"UTINYINT","t":"BIGINT","g":"VARCHAR","v":"UTINYINT","n":"DOUBLE","s":"VARCHAR","q":"UINTEGER","c":"VARCHAR","b":"VARCHAR"}') AS r)`;

/**
 * Appends `frames` as rows with offsets `firstOffset`, `firstOffset + 1` ... and commit time
 * `loggedAtMicros`. The hot path of the writer: per frame, only the two BIGINT values allocate.
 */
export function appendFrames(app: DuckDBAppender, frames: readonly Frame[], firstOffset: number, loggedAtMicros: number): void {
  const loggedAt = BigInt(loggedAtMicros);
  const size = DuckDBVector.standardSize();
  for (let start = 0; start < frames.length; start += size) {
    const n = Math.min(size, frames.length - start);
    const chunk = DuckDBDataChunk.create(LOG_TYPES, n);
    const v: Vectors = LOG_TYPES.map((_, i) => chunk.getColumnVector(i));
    for (let r = 0; r < n; r++) {
      v[Col.Offset]!.setItem(r, BigInt(firstOffset + start + r));
      setRow(v, r, frames[start + r]!);
      v[Col.LoggedAt]!.setItem(r, loggedAt);
    }
    for (const x of v) x.flush();
    app.appendDataChunk(chunk);
  }
}

function decodeValue(vtype: number, num: number | null, str: string | null): Value {
  switch (vtype) {
    case VT.number:
      return num;
    case VT.bool:
      return num === 1;
    case VT.bigint:
      return BigInt(str ?? "0");
    case VT.string:
      return str;
    default:
      return null;
  }
}

/** One row as returned by `SELECT ${LOG_COLUMNS}`, in column order. */
export type LogRow = [bigint | number, number, bigint | number, string | null, number, number | null, string | null, number, string | null, string | null, bigint | number];

/** Frames from the columns of `SELECT ${LOG_COLUMNS_FAST}` (result.getColumns()): data frames built directly. */
export function columnsToFrames(cols: readonly (readonly unknown[])[]): Logged[] {
  const [offset, kind, ts, tag, vtype, num, str, quality, source, body, loggedAt] = cols as unknown as [
    number[], number[], number[], (string | null)[], number[], (number | null)[], (string | null)[], number[], (string | null)[], (string | null)[], number[],
  ];
  // an empty result has no column arrays at all
  const n = offset?.length ?? 0;
  const out: Logged[] = new Array(n);
  for (let i = 0; i < n; i++) {
    if (kind[i] === KIND_CODE.data) {
      out[i] = { kind: "data", tag: tag[i] ?? "", value: decodeValue(vtype[i]!, num[i]!, str[i]!), ts: ts[i]!, quality: quality[i]!, source: source[i] ?? "", offset: offset[i]!, loggedAt: loggedAt[i]! };
    } else {
      out[i] = rowToFrame([offset[i]!, kind[i]!, ts[i]!, tag[i]!, vtype[i]!, num[i]!, str[i]!, quality[i]!, source[i]!, body[i]!, loggedAt[i]!]);
    }
  }
  return out;
}

export function rowToFrame(r: LogRow): Logged {
  const offset = Number(r[0]);
  const ts = Number(r[2]);
  const loggedAt = Number(r[10]);
  const tag = r[3] ?? "";
  const kind = KIND_NAME[r[1]];
  const body = r[9] === null ? {} : (JSON.parse(r[9]) as Record<string, unknown>);
  switch (kind) {
    case "data":
      return { kind, tag, value: decodeValue(r[4], r[5], r[6]), ts, quality: r[7], source: r[8] ?? "", offset, loggedAt };
    case "cmd":
      return {
        kind,
        id: String(body.id),
        tag,
        value: decodeValue(r[4], r[5], r[6]),
        origin: body.origin as "rest",
        actor: String(body.actor ?? ""),
        tenant: String(body.tenant ?? ""),
        ts,
        expiresAt: Number(body.expiresAt),
        offset,
        loggedAt,
      };
    case "ack":
      return {
        kind,
        cmd: String(body.cmd),
        tag,
        ok: body.ok === true,
        status: body.status as "ok",
        // acks stored before codes existed carry status and text only
        code: isAckCode(body.code) ? body.code : legacyAckCode(String(body.status), body.error === undefined ? undefined : String(body.error)),
        ...(body.error === undefined ? {} : { error: String(body.error) }),
        ts,
        source: r[8] ?? "",
        offset,
        loggedAt,
      };
    default:
      return {
        kind: "event",
        type: String(body.type),
        source: r[8] ?? "",
        ...(r[3] === null ? {} : { tag: r[3] }),
        ts,
        ...(body.data === undefined ? {} : { data: body.data as Record<string, unknown> }),
        offset,
        loggedAt,
      };
  }
}
