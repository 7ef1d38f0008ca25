// Benchmark reporting: prints a table and writes bench-results/<name>.json as
// { "rows": [{ "metric", "value", "unit", "baseline"?, "ratio"? }] } so runs can be compared.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface BenchRow {
  metric: string;
  value: number;
  unit: string;
  /** the same quantity measured for the baseline in the same run (raw appender, bare client loop) */
  baseline?: number;
  /** value / baseline (or as the metric documents) */
  ratio?: number;
}

const fmt = (n: number | undefined) =>
  n === undefined ? "" : Math.abs(n) >= 1000 ? Math.round(n).toLocaleString("en-US") : Number(n.toPrecision(4)).toString();

export function report(name: string, rows: BenchRow[]): void {
  const table = rows.map((r) => [r.metric, fmt(r.value), r.unit, fmt(r.baseline), r.ratio === undefined ? "" : r.ratio.toFixed(2)]);
  const head = ["metric", "value", "unit", "baseline", "ratio"];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (i === 0 || i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ") + " |";
  console.log(`\n${name}`);
  console.log(line(head));
  console.log("|" + widths.map((w, i) => (i === 0 || i === 2 ? ":" : "-") + "-".repeat(w) + (i === 0 || i === 2 ? "-" : ":")).join("|") + "|");
  for (const r of table) console.log(line(r));
  const dir = join(import.meta.dir, "..", "..", "bench-results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), JSON.stringify({ name, at: new Date().toISOString(), rows }, null, 2) + "\n");
}

/** p-th percentile (0..100) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const rssMiB = () => process.memoryUsage().rss / 1024 / 1024;

/**
 * A benchmark made of parts: runs every `<dir>/<part>.ts` (each exporting `measure(): Promise<BenchRow[]>`)
 * in name order and reports their rows as one table named `name`.
 */
export async function reportParts(name: string, dir: string): Promise<void> {
  const { readdirSync } = await import("node:fs");
  const parts = readdirSync(dir).filter((f) => f.endsWith(".ts")).sort();
  if (parts.length === 0) throw new Error(`no benchmark parts in ${dir}`);
  const rows: BenchRow[] = [];
  for (const part of parts) {
    const mod = (await import(join(dir, part))) as { measure?: () => Promise<BenchRow[]> };
    if (typeof mod.measure !== "function") throw new Error(`${part} exports no measure()`);
    rows.push(...(await mod.measure()));
  }
  report(name, rows);
}
