// Encoders for query results, streamed batch by batch: JSON (default), CSV and Arrow IPC stream.
// Nothing here holds more than one batch of rows. (Parquet is written as a whole file first:
// storage/parquet-export.ts.)
import { Bool, Field, Float64, Int64, Int32, makeData, RecordBatch, RecordBatchStreamWriter, Schema, Struct, TimestampMillisecond, Utf8, vectorFromArray, type DataType } from "apache-arrow";
import { DuckDBTypeId } from "@duckdb/node-api";
import type { Column, QueryResult } from "../../storage/index.ts";

export type Format = "json" | "csv" | "arrow" | "parquet";

export const CONTENT_TYPE: Record<Format, string> = {
  json: "application/json",
  csv: "text/csv; charset=utf-8",
  arrow: "application/vnd.apache.arrow.stream",
  parquet: "application/vnd.apache.parquet",
};

/** Chooses the format from `format` (body or query) first, then the Accept header. */
export function pickFormat(format: string | undefined, accept: string | undefined): Format {
  if (format === "csv" || format === "arrow" || format === "json" || format === "parquet") return format;
  if (accept?.includes("vnd.apache.parquet")) return "parquet";
  if (accept?.includes("vnd.apache.arrow")) return "arrow";
  if (accept?.includes("text/csv")) return "csv";
  return "json";
}

/**
 * JSON has no bigint: safe integers go out as numbers, larger ones as exact decimal strings. Nor NaN or
 * infinities (JSON.stringify writes null, which reads as no value): "NaN", "Infinity", "-Infinity", as
 * /api/tags and the uplink give them (schemas/wire.ts).
 */
const jsonReplacer = (_k: string, v: unknown) =>
  typeof v === "bigint"
    ? v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(v)
      : v.toString()
    : typeof v === "number" && !Number.isFinite(v)
      ? String(v)
      : v;

const csvCell = (v: unknown): string => {
  if (v === null || v === undefined) return "";
  const s = v instanceof Date ? v.toISOString() : typeof v === "object" ? JSON.stringify(v, jsonReplacer) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

const enc = new TextEncoder();

/**
 * The result as a byte stream. The first batch is awaited before the stream is returned, so that
 * refusals and fast failures still get an HTTP error status; a failure after that ends a JSON body
 * with an `error` member and aborts a CSV or Arrow stream.
 */
export async function encodeResult(result: QueryResult, format: Exclude<Format, "parquet">): Promise<ReadableStream<Uint8Array>> {
  const it = result.batches[Symbol.asyncIterator]();
  const first = await it.next();
  const batches = (async function* () {
    if (!first.done) yield first.value;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  })();
  const gen = format === "json" ? jsonChunks(result, batches) : format === "csv" ? csvChunks(result, batches) : arrowChunks(result, batches);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const n = await gen.next();
        if (n.done) controller.close();
        else controller.enqueue(n.value);
      } catch (e) {
        controller.error(e);
      }
    },
    async cancel() {
      await it.return?.(undefined);
    },
  });
}

async function* jsonChunks(result: QueryResult, batches: AsyncIterable<unknown[][]>): AsyncGenerator<Uint8Array> {
  yield enc.encode(`{"columns":${JSON.stringify(result.columns.map((c) => ({ name: c.name, type: c.type })))},"rows":[`);
  let sep = "";
  let error: string | null = null;
  try {
    for await (const rows of batches) {
      let s = "";
      for (const r of rows) {
        s += sep + JSON.stringify(r, jsonReplacer);
        sep = ",";
      }
      yield enc.encode(s);
    }
  } catch (e) {
    error = JSON.stringify({ error: (e as Error).name, message: (e as Error).message });
  }
  yield enc.encode(`],"rowCount":${result.rowCount},"truncated":${result.truncated}${error ? `,"error":${error}` : ""}}`);
}

async function* csvChunks(result: QueryResult, batches: AsyncIterable<unknown[][]>): AsyncGenerator<Uint8Array> {
  yield enc.encode(result.columns.map((c) => csvCell(c.name)).join(",") + "\n");
  for await (const rows of batches) {
    let s = "";
    for (const r of rows) s += r.map(csvCell).join(",") + "\n";
    yield enc.encode(s);
  }
}

/** DuckDB type -> Arrow type and a value mapper; anything unusual travels as text. */
function arrowColumn(c: Column): { type: DataType; map: (v: unknown) => unknown } {
  const id = c.duckdbType.typeId;
  switch (id) {
    case DuckDBTypeId.BOOLEAN:
      return { type: new Bool(), map: (v) => v };
    case DuckDBTypeId.TINYINT:
    case DuckDBTypeId.SMALLINT:
    case DuckDBTypeId.INTEGER:
    case DuckDBTypeId.UTINYINT:
    case DuckDBTypeId.USMALLINT:
      return { type: new Int32(), map: (v) => v };
    case DuckDBTypeId.UINTEGER:
    case DuckDBTypeId.BIGINT:
      return { type: new Int64(), map: (v) => (v === null ? null : BigInt(v as number | bigint)) };
    case DuckDBTypeId.FLOAT:
    case DuckDBTypeId.DOUBLE:
    case DuckDBTypeId.DECIMAL:
      return { type: new Float64(), map: (v) => v };
    case DuckDBTypeId.TIMESTAMP:
    case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_S:
    case DuckDBTypeId.TIMESTAMP_TZ:
    case DuckDBTypeId.DATE:
      // Arrow JS takes epoch milliseconds; the exact µs are in the views' ts_us columns
      return { type: new TimestampMillisecond(), map: (v) => (v instanceof Date ? v.getTime() : v) };
    default:
      return { type: new Utf8(), map: (v) => (v === null || v === undefined ? null : typeof v === "string" ? v : csvCell(v)) };
  }
}

async function* arrowChunks(result: QueryResult, batches: AsyncIterable<unknown[][]>): AsyncGenerator<Uint8Array> {
  const cols = result.columns.map(arrowColumn);
  const writer = new RecordBatchStreamWriter();
  // Arrow batches of ~64k rows: DuckDB's 2048-row chunks are too small to be worth a batch each
  let pending: unknown[][] = [];
  // one schema for every batch: the writer restarts the stream when a batch's schema differs
  const schema = new Schema(result.columns.map((c, i) => new Field(c.name, cols[i]!.type, true)));
  const batchOf = (rows: unknown[][]) => {
    const children = result.columns.map((_c, i) => vectorFromArray(rows.map((r) => cols[i]!.map(r[i])) as never, cols[i]!.type).data[0]!);
    return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: rows.length, nullCount: 0, children }));
  };
  const flush = () => {
    if (pending.length === 0) return;
    writer.write(batchOf(pending));
    pending = [];
  };
  const chunks: Uint8Array[] = [];
  const sink = (async () => {
    for await (const b of writer) chunks.push(b);
  })();
  for await (const rows of batches) {
    for (const r of rows) pending.push(r);
    if (pending.length >= 65_536) {
      flush();
      await Bun.sleep(0);
      if (chunks.length) yield concat(chunks.splice(0));
    }
  }
  flush();
  // an empty result still carries its schema
  if (result.rowCount === 0) writer.write(batchOf([]));
  writer.finish();
  writer.close();
  await sink;
  if (chunks.length) yield concat(chunks);
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
