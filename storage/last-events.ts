// What a producer said last about each of its tags: the last event per tag among some event types
// that one source logged, read back at a start so that a driver does not log again what the log
// already says (an OPC UA node refused for the same reason after a restart). One query on the hot
// table (kind and source are columns; the type is in the JSON body); an event moved to the Parquet
// archive by retention counts as not said, so an old statement is repeated once: harmless.
import type { EventFrame, Logged } from "../schemas/index.ts";
import { KIND_CODE, LOG_COLUMNS, rowToFrame, type LogRow } from "./codec.ts";
import type { EventLog } from "./log.ts";

/** The last event of each tag among `types` logged by `source`, by tag (events without a tag are left out). */
export async function lastEventsByTag(log: EventLog, source: string, types: readonly string[]): Promise<Map<string, Logged<EventFrame>>> {
  const out = new Map<string, Logged<EventFrame>>();
  if (types.length === 0) return out;
  const conn = await log.connect();
  try {
    const params = types.map((_, i) => `$${i + 2}`).join(", ");
    const rows = await conn.runAndReadAll(
      `SELECT ${LOG_COLUMNS} FROM log WHERE kind = ${KIND_CODE.event} AND source = $1 AND tag IS NOT NULL
         AND json_extract_string(body, '$.type') IN (${params})
       QUALIFY row_number() OVER (PARTITION BY tag ORDER BY "offset" DESC) = 1`,
      [source, ...types],
    );
    for (const row of rows.getRows()) {
      const f = rowToFrame(row as unknown as LogRow) as Logged<EventFrame>;
      if (f.tag !== undefined) out.set(f.tag, f);
    }
  } finally {
    conn.closeSync();
  }
  return out;
}
