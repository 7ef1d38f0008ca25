// The result budget's one library internal (storage/result-budget.ts): the private string_t view of
// @duckdb/node-api's VARCHAR/BLOB vectors. Pinned here to the version it was verified with, so that an
// upgrade fails in this file (re-verify, then bump STRING_VIEW_VERIFIED_WITH) rather than in production;
// the start-up check reads lengths without decoding, and refuses loudly when the view is gone.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DuckDBInstance, DuckDBVarCharVector, type DuckDBConnection } from "@duckdb/node-api";
import { checkVectorInternals, convertWithin, STRING_VIEW_VERIFIED_WITH } from "../../storage/result-budget.ts";

let instance: DuckDBInstance;
let conn: DuckDBConnection;
beforeAll(async () => {
  instance = await DuckDBInstance.create(":memory:");
  conn = await instance.connect();
});
afterAll(() => {
  conn.closeSync();
  instance.closeSync();
});

/** The installed @duckdb/node-api's version (its package.json, beside its main module). */
function installedNodeApiVersion(): string {
  let dir = dirname(Bun.resolveSync("@duckdb/node-api", import.meta.dir));
  while (!dir.endsWith("node-api")) dir = dirname(dir);
  return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
}

describe("the result budget's fenced library internal", () => {
  it("is verified against the installed @duckdb/node-api (an upgrade fails here: re-verify the string_t view, then bump)", () => {
    expect(installedNodeApiVersion()).toBe(STRING_VIEW_VERIFIED_WITH);
  });

  it("reads string lengths at start without decoding them", async () => {
    await checkVectorInternals(conn);
  });

  it("measures a 10 MB string against the budget without converting the row", async () => {
    const chunk = (await (await conn.run(`SELECT 1 AS i, repeat('x', 10000000) AS huge`)).fetchChunk())!;
    const fit = convertWithin(chunk, 1_000_000, 1_000_000);
    expect(fit).toMatchObject({ rows: [], fit: 0, cut: true, oversized: { column: 1, bytes: 10_000_004 } });
  });

  it("refuses to start, naming the file, when the library no longer keeps the view", async () => {
    const original = DuckDBVarCharVector.fromRawVector;
    // what an upgrade that renames the private field looks like from here
    DuckDBVarCharVector.fromRawVector = (vector, itemCount) => {
      const v = original(vector, itemCount);
      Object.defineProperty(v, "dataView", { value: undefined });
      return v;
    };
    try {
      await expect(checkVectorInternals(conn)).rejects.toThrow(/@duckdb\/node-api internals changed: .*storage\/result-budget\.ts, verified with 1\.5\.6/);
    } finally {
      DuckDBVarCharVector.fromRawVector = original;
    }
  });
});
