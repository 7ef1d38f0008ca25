// The result-size budget: the bytes of a DuckDB chunk's rows, measured BEFORE they are converted to JS
// values, so that a huge string is refused without ever being copied into the process's heap.
// `memory_limit` bounds DuckDB's own memory only; `SELECT repeat('x', 1000000000)` took the process from
// 280 MB to 3.8 GB RSS and blocked the event loop ~3 s in conversion and encoding.
//
// The one library internal used here (read by `rawStrings` alone, checked at start by
// `checkVectorInternals`, pinned by test/storage/result-budget.test.ts to STRING_VIEW_VERIFIED_WITH): the
// VARCHAR/BLOB vectors of @duckdb/node-api keep their raw `string_t` array in a private `dataView`;
// DuckDB's string_t is 16 bytes whose first 4 are the length (little endian, duckdb.h `duckdb_string_t`),
// so a length is read without decoding the string. No public way exists in 1.5.6: node-api exposes a
// vector's items only decoded (`getItem`), and the public C-API route (DuckDBDataChunk.chunk +
// `vector_get_data` of @duckdb/node-bindings) needs that package as a dependency of our own (it is only
// node-api's today, at the same pinned version): the move to take when the internal changes.
import { DuckDBBlobVector, DuckDBListVector, DuckDBTypeId, DuckDBVarCharVector, JSDuckDBValueConverter, type DuckDBConnection, type DuckDBDataChunk, type DuckDBVector } from "@duckdb/node-api";

/** The @duckdb/node-api version whose private string view `rawStrings` was verified against (see the header). */
export const STRING_VIEW_VERIFIED_WITH = "1.5.6-r.1";

/** Bytes counted for a cell of a fixed-width type (a JSON number or ISO timestamp and its separator). */
const FIXED_CELL_BYTES = 24;
/** Bytes counted on top of a string's own (quotes and separator). */
const STRING_OVERHEAD = 4;

interface RawStrings {
  view: DataView;
  validity: { itemValid(i: number): boolean };
}

/** The string_t array and validity behind a VARCHAR/BLOB vector (private in the library: see the header). */
function rawStrings(v: DuckDBVector): RawStrings | null {
  if (!(v instanceof DuckDBVarCharVector) && !(v instanceof DuckDBBlobVector)) return null;
  const raw = v as unknown as { dataView?: unknown; validity?: { itemValid?: unknown } };
  if (!(raw.dataView instanceof DataView) || typeof raw.validity?.itemValid !== "function") return null;
  return { view: raw.dataView, validity: raw.validity as RawStrings["validity"] };
}

/** Bytes of string `i`, or null for NULL (whose string_t holds garbage). */
function stringBytes(raw: RawStrings, i: number): number | null {
  return raw.validity.itemValid(i) ? raw.view.getUint32(i * 16, true) : null;
}

/** Bytes of row `i` of `v` as it will be encoded, approximately, without converting a string. */
function cellBytes(v: DuckDBVector, i: number): number {
  const raw = rawStrings(v);
  if (raw) return (stringBytes(raw, i) ?? 0) + STRING_OVERHEAD;
  if (v instanceof DuckDBListVector) {
    const child = v.childVector;
    const from = v.getEntryOffset(i);
    let n = 2;
    for (let k = 0; k < v.getEntryLength(i); k++) n += cellBytes(child, from + k);
    return n;
  }
  return FIXED_CELL_BYTES;
}

/** Nested values other than lists (struct, map, union, array): measured once converted. */
const isMeasuredAfter = (v: DuckDBVector) => NESTED.has(v.type.typeId);
const NESTED = new Set<DuckDBTypeId>([DuckDBTypeId.STRUCT, DuckDBTypeId.MAP, DuckDBTypeId.UNION, DuckDBTypeId.ARRAY]);

export function approxBytes(x: unknown): number {
  if (x === null || x === undefined) return 4;
  if (typeof x === "string") return x.length + STRING_OVERHEAD;
  if (Array.isArray(x)) return x.reduce((n: number, e) => n + approxBytes(e), 2);
  if (typeof x === "object" && !(x instanceof Date)) {
    let n = 2;
    for (const [k, v] of Object.entries(x)) n += k.length + 3 + approxBytes(v);
    return n;
  }
  return FIXED_CELL_BYTES;
}

/** A cell larger than the whole budget: refused, not cut. */
export interface OversizedCell {
  column: number;
  bytes: number;
}

/** What fits of a chunk: its first `fit` rows (as JS values when converted), their bytes, and why it stopped. */
export interface Fit {
  /** the first `fit` rows as JS values; empty when `convert` was false */
  rows: unknown[][];
  /** how many of the chunk's rows fit */
  fit: number;
  bytes: number;
  cut: boolean;
  oversized: OversizedCell | null;
}

/**
 * The rows of `chunk` converted to JS values, as many as fit in `budgetBytes`, measured before each is
 * converted. `cut` is true when rows were left out; `oversized` names a single cell larger than
 * `maxBytes` (then no row is converted). With `convert` false the rows are only measured (the chunk
 * itself goes on, e.g. to the Parquet export): only rows with nested values are converted, to measure them.
 */
export function convertWithin(chunk: DuckDBDataChunk, budgetBytes: number, maxBytes: number, convert = true): Fit {
  const vectors = Array.from({ length: chunk.columnCount }, (_, c) => chunk.getColumnVector(c));
  const nested = vectors.some(isMeasuredAfter);
  const rows: unknown[][] = [];
  let bytes = 0;
  let fit = 0;
  for (let i = 0; i < chunk.rowCount; i++) {
    let rowBytes = 0;
    for (let c = 0; c < vectors.length; c++) {
      const cell = cellBytes(vectors[c]!, i);
      if (cell > maxBytes) return { rows: [], fit: 0, bytes: 0, cut: true, oversized: { column: c, bytes: cell } };
      rowBytes += cell;
    }
    if (bytes + rowBytes > budgetBytes) return { rows, fit, bytes, cut: true, oversized: null };
    if (convert || nested) {
      const row = chunk.convertRowValues(i, JSDuckDBValueConverter) as unknown[];
      for (let c = 0; c < vectors.length; c++) {
        if (!isMeasuredAfter(vectors[c]!)) continue;
        const cell = approxBytes(row[c]);
        if (cell > maxBytes) return { rows: [], fit: 0, bytes: 0, cut: true, oversized: { column: c, bytes: cell } };
        rowBytes += cell - FIXED_CELL_BYTES;
      }
      if (bytes + rowBytes > budgetBytes) return { rows, fit, bytes, cut: true, oversized: null };
      if (convert) rows.push(row);
    }
    bytes += rowBytes;
    fit++;
  }
  return { rows, fit, bytes, cut: false, oversized: null };
}

/**
 * Proves at start that string lengths can still be read without decoding (the library internal above):
 * an upgrade of @duckdb/node-api that moves it fails here, loudly, instead of letting huge values through.
 */
export async function checkVectorInternals(conn: DuckDBConnection): Promise<void> {
  const r = await conn.run(`SELECT 'abc'::VARCHAR AS s, repeat('y', 40) AS l, 'zz'::BLOB AS b, NULL::VARCHAR AS n`);
  const chunk = await r.fetchChunk();
  const got = chunk ? [0, 1, 2, 3].map((c) => {
    const raw = rawStrings(chunk.getColumnVector(c));
    return raw ? stringBytes(raw, 0) : "unreadable";
  }) : [];
  if (JSON.stringify(got) !== "[3,40,2,null]") {
    throw new Error(
      `@duckdb/node-api internals changed: string lengths read ${JSON.stringify(got)} instead of [3,40,2,null]; the result budget cannot measure strings without decoding them (storage/result-budget.ts, verified with ${STRING_VIEW_VERIFIED_WITH})`,
    );
  }
}
