// How a frame maps to a row of the `log` table and back. Data frames use the typed columns only;
// commands, acks and events carry their details as JSON in `body` (they are rare, readable in SQL).
import type { DuckDBAppender } from "@duckdb/node-api";
import type { Frame, Logged, Value } from "../schemas/frames.ts";

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

/** JSON.stringify that keeps bigint exact (as a decimal string). */
export function jsonStringify(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
}

function appendValue(app: DuckDBAppender, value: Value): void {
  switch (typeof value) {
    case "number":
      app.appendUTinyInt(VT.number);
      app.appendDouble(value);
      app.appendNull();
      return;
    case "boolean":
      app.appendUTinyInt(VT.bool);
      app.appendDouble(value ? 1 : 0);
      app.appendNull();
      return;
    case "bigint":
      // exact in `str`, approximate in `num` so that SQL aggregates still work
      app.appendUTinyInt(VT.bigint);
      app.appendDouble(Number(value));
      app.appendVarchar(value.toString());
      return;
    case "string":
      app.appendUTinyInt(VT.string);
      app.appendNull();
      app.appendVarchar(value);
      return;
    default:
      app.appendUTinyInt(VT.null);
      app.appendNull();
      app.appendNull();
  }
}

/** Appends one frame as one row. The hot path of the writer: no allocation beyond the two bigints. */
export function appendRow(app: DuckDBAppender, f: Frame, offset: number, loggedAt: bigint): void {
  app.appendBigInt(BigInt(offset));
  app.appendUTinyInt(KIND_CODE[f.kind]);
  app.appendBigInt(BigInt(Math.trunc(f.ts)));
  switch (f.kind) {
    case "data":
      app.appendVarchar(f.tag);
      appendValue(app, f.value);
      app.appendUInteger(f.quality >>> 0);
      app.appendVarchar(f.source);
      app.appendNull();
      break;
    case "cmd": {
      app.appendVarchar(f.tag);
      appendValue(app, f.value);
      app.appendUInteger(0);
      app.appendVarchar(f.origin);
      app.appendVarchar(jsonStringify({ id: f.id, origin: f.origin, actor: f.actor, tenant: f.tenant, expiresAt: f.expiresAt }));
      break;
    }
    case "ack":
      app.appendVarchar(f.tag);
      appendValue(app, null);
      app.appendUInteger(f.ok ? 0 : 0x80000000);
      app.appendVarchar(f.source);
      app.appendVarchar(jsonStringify({ cmd: f.cmd, ok: f.ok, status: f.status, error: f.error }));
      break;
    case "event":
      if (f.tag === undefined) app.appendNull();
      else app.appendVarchar(f.tag);
      appendValue(app, null);
      app.appendUInteger(0);
      app.appendVarchar(f.source);
      app.appendVarchar(jsonStringify({ type: f.type, data: f.data }));
      break;
  }
  app.appendBigInt(loggedAt);
  app.endRow();
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
export type LogRow = [bigint, number, bigint, string | null, number, number | null, string | null, number, string | null, string | null, bigint];

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
