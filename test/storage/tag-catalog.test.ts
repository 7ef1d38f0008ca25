// The `tags` catalog table of the SQL views (storage/query.ts setCatalog, storage/views.ts): a config
// reload refills it only when a column it shows changed, so that an edit of mapping fields of a large
// catalog (expressions, deadbands) does not append every tag again on the event loop.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import { Variable } from "../../schemas/index.ts";
import { EventLog, QueryEngine } from "../../storage/index.ts";
import { sameCatalogRows } from "../../storage/views.ts";
import { tempDir } from "../helpers/index.ts";

const tag = (name: string, extra: Record<string, unknown> = {}): Variable => {
  const t = Value.Default(Variable, { tag: name, driver: "sim", type: "float64", access: "R", ...extra }) as Variable;
  if (!TypeCompiler.Compile(Variable).Check(t)) throw new Error(`bad test tag ${name}`);
  return t;
};

let tmp: ReturnType<typeof tempDir>;
let log: EventLog;
let q: QueryEngine;

beforeEach(async () => {
  tmp = tempDir();
  log = await EventLog.open({ path: join(tmp.path, "log.duckdb") });
  q = new QueryEngine(log, { timeoutMs: 5000 });
  await q.start([tag("a", { unit: "°C" }), tag("b", { tenant: "t2" })]);
});

afterEach(async () => {
  await q.stop();
  await log.close();
  tmp.cleanup();
});

/** A row the gateway never writes, put into the table behind the engine's back: it survives only while the table is not refilled. */
async function markTable(): Promise<void> {
  const conn = await log.connect();
  await conn.run("INSERT INTO tag_catalog (tag, driver, type, access, tenant) VALUES ('marker', 'x', 'float64', 'R', 'default')");
  conn.closeSync();
}
const rows = async () => (await q.all("SELECT tag, unit, tenant FROM tags ORDER BY tag")).rows;

describe("tag catalog table", () => {
  it("is not refilled by an edit of fields it does not show (expression, deadband, report by exception)", async () => {
    await markTable();
    await q.setCatalog([tag("a", { unit: "°C", expr: "raw * 2", deadband: 0.5 }), tag("b", { tenant: "t2", reportByException: false })]);
    expect(await rows()).toEqual([
      ["a", "°C", "default"],
      ["b", null, "t2"],
      ["marker", null, "default"],
    ]);
  });

  it("is refilled when a column it shows changes, also after an edit that left it alone", async () => {
    await q.setCatalog([tag("a", { unit: "°C", expr: "raw * 2" }), tag("b", { tenant: "t2" })]);
    await markTable();
    await q.setCatalog([tag("a", { unit: "K", expr: "raw * 2" }), tag("b", { tenant: "t2" })]);
    expect(await rows()).toEqual([
      ["a", "K", "default"],
      ["b", null, "t2"],
    ]);
  });

  it("compares every column the table shows, and the order and number of tags", () => {
    const base = [tag("a"), tag("b")];
    expect(sameCatalogRows(base, [tag("a", { expr: "raw + 1" }), tag("b", { deadband: 2 })])).toBe(true);
    for (const changed of [{ unit: "V" }, { description: "pump" }, { access: "RW" }, { tenant: "t9" }, { type: "int16" }]) {
      expect(sameCatalogRows(base, [tag("a", changed), tag("b")])).toBe(false);
    }
    expect(sameCatalogRows(base, [tag("a", { driver: undefined, derived: { expr: "b * 2" } }), tag("b")])).toBe(false);
    expect(sameCatalogRows(base, [tag("b"), tag("a")])).toBe(false);
    expect(sameCatalogRows(base, [tag("a")])).toBe(false);
  });
});
