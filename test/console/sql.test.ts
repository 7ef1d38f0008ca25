// History & SQL and the commands audit in a real browser against the demo plant: a query returns rows
// with its time and row count and a chart, the same query downloads as CSV and as Parquet (read back
// with DuckDB), and a download cut by the result budget says so; the audit page lists a write
// with who, from where and the result, and its filters narrow the list.
import { beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { DuckDBInstance } from "@duckdb/node-api";
import { consoleHarness, SLOW } from "./ops-harness.ts";
import { waitFor } from "../helpers/index.ts";

// a small result budget (the demo's queries stay far below it): a download that it cuts says so
const h = consoleHarness(import.meta.file, { files: { "gateway.yml": "query: { maxResultBytes: 200000 }" } });

/** A downloaded Parquet file as a fresh DuckDB instance reads it: column names and types, and its rows. */
async function readParquet(path: string): Promise<{ columns: [string, string][]; rows: unknown[][] }> {
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  try {
    const from = `read_parquet('${path.replaceAll("'", "''")}')`;
    const columns = (await conn.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${from})`)).getRows() as [string, string][];
    return { columns, rows: (await conn.runAndReadAll(`SELECT * FROM ${from}`)).getRowsJson() as unknown[][] };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}
beforeAll(async () => {
  // readings of the boiler for the chart
  await waitFor(() => h.g.gw.ctx.log.head > 50, "demo readings in the log", 20_000);
}, 30_000);

describe("History & SQL", () => {
  it("runs a query: rows in a table with the time and row count, a chart, and the same query as CSV and Parquet downloads", async () => {
    const page = await h.open("viewer", "/history");
    await page.locator("textarea[name=sql]").fill("SELECT ts, value FROM data WHERE tag = 'line1/boiler/temperature' ORDER BY ts DESC LIMIT 20");
    await page.getByRole("button", { name: "Run" }).click();
    const stats = page.getByTestId("stats");
    await stats.waitFor({ timeout: 15_000 });
    expect(await stats.textContent()).toMatch(/^\d+ rows in \d+ ms$/);
    const rows = await page.getByTestId("result").locator("tbody tr").count();
    expect(rows).toBeGreaterThan(1);
    expect(await stats.textContent()).toStartWith(`${rows} rows`);
    expect(Number(await page.locator(".trend").getAttribute("data-points"))).toBe(rows);
    await h.shot(page, "sql-result");

    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
    expect(download.suggestedFilename()).toBe("query.csv");
    const csv = readFileSync((await download.path())!, "utf8").trim().split("\n");
    expect(csv[0]).toBe("ts,value");
    expect(csv.length).toBeGreaterThanOrEqual(rows + 1); // the log grows between the two runs, LIMIT 20 caps both
    expect(Number(csv[1]!.split(",")[1])).toBeGreaterThan(0);

    const [parquet] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download Parquet" }).click()]);
    expect(parquet.suggestedFilename()).toBe("query.parquet");
    const back = await readParquet((await parquet.path())!);
    expect(back.columns).toEqual([["ts", "TIMESTAMP"], ["value", "DOUBLE"]]);
    // the log still grows: at least the CSV's rows, at most the LIMIT
    expect(back.rows.length).toBeGreaterThanOrEqual(csv.length - 1);
    expect(back.rows.length).toBeLessThanOrEqual(20);
    expect(back.rows.every(([, v]) => typeof v === "number" && v > 0)).toBe(true);
    await h.shot(page, "sql-downloads");
    await page.context().close();
  }, SLOW);

  it("says that a CSV download was cut at the gateway's result limit, with its row count", async () => {
    const page = await h.open("viewer", "/history");
    await page.locator("textarea[name=sql]").fill("SELECT range AS i, repeat('y', 100) AS s FROM range(100000)");
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByTestId("stats").filter({ hasText: "(cut at the result limit)" }).waitFor({ timeout: 15_000 });
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
    const lines = readFileSync((await download.path())!, "utf8").trim().split("\n");
    expect(lines.length - 1).toBeLessThan(100_000);
    const note = page.getByTestId("downloaded");
    await note.waitFor();
    expect(await note.textContent()).toBe(`query.csv: ${(lines.length - 1).toLocaleString("en-US")} rows, cut at the gateway's result limit (query.maxRows / query.maxResultBytes): the rest of the result is not in the file`);
    await h.shot(page, "sql-download-cut");
    await page.context().close();
  }, SLOW);

  it("shows the gateway's refusal of a statement that is not a SELECT, naming the sql field", async () => {
    const page = await h.open("viewer", "/history");
    h.allowErrors(page, /status of 403/); // the sandbox refuses a statement that is not a SELECT with 403
    await page.locator("textarea[name=sql]").fill("DELETE FROM data");
    await page.getByRole("button", { name: "Run" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor({ timeout: 15_000 });
    expect(await alert.textContent()).toContain("sql");
    await h.shot(page, "sql-refused");
    await page.context().close();
  }, SLOW);
});

describe("Commands audit", () => {
  it("lists a write with who, from where and its result, and the filters narrow the list", async () => {
    const tag = h.g.gw.ctx.catalog.get("line1/pump/speed_setpoint")!;
    const cmd = await h.g.gw.ctx.commands.submit({ tag: tag.tag, value: 1200, origin: "mqtt", actor: "scada-1", tenant: tag.tenant, ttlMs: 10_000 });
    await h.g.gw.ctx.commands.waitForAck(cmd.id, 10_000);
    const page = await h.open("viewer", "/commands");
    const row = page.locator("tbody tr", { hasText: "scada-1" });
    await row.waitFor({ timeout: 15_000 });
    expect(await row.locator("[data-col=origin]").textContent()).toBe("MQTT");
    expect(await row.locator("[data-col=result] [data-code]").getAttribute("data-code")).toBe("ok");
    expect(await row.locator("[data-col=result]").textContent()).toContain("Written");
    await h.shot(page, "commands");
    await page.locator("select[name=origin]").selectOption("rest");
    await page.locator("tbody tr", { hasText: "scada-1" }).waitFor({ state: "detached", timeout: 10_000 });
    await page.locator("select[name=origin]").selectOption("mqtt");
    await page.locator("input[name=actor]").fill("scada-1");
    await row.waitFor({ timeout: 10_000 });
    expect(await page.locator("tbody tr").count()).toBe(1);
    await h.shot(page, "commands-filtered");
    await page.context().close();
  }, SLOW);
});
