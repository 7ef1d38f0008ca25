// `bun run bench console`: the console measured in Debian's chromium against a gateway (test/console's
// harness): the first load's JavaScript (gzip bytes of every script the login page and the overview
// load; target <= 150 KB), the tags page with 1,000 tags changing at 1 Hz (frame times from
// requestAnimationFrame deltas in the page over 15 s; target p99 < 33 ms), and a 7-day trend of one
// tag (from the preset click to uPlot's draw, history API included; target < 500 ms).
// The frame-time baseline is the same measure on an idle page (a tag page with nothing live) while the
// gateway runs the same load: on two shared cores the gateway (same process as this script) and other
// work take frames from chromium whatever the page does, and the baseline shows how much.
import { statSync } from "node:fs";
import { join } from "node:path";
import type { Frame } from "../../schemas/index.ts";
import { BUILD_DIR } from "../../console/build.mjs";
import { startConsoleHarness } from "../console/harness.ts";
import { percentile, report, type BenchRow } from "./report.ts";

const TAGS = 1000;
const HISTORY_TAG = "archive/history";
const DAY_MS = 86_400_000;
const MEASURE_MS = 15_000;

/** requestAnimationFrame deltas in the page for `ms`: the frame times the user sees. */
function frameTimes(page: import("playwright-core").Page, ms: number): Promise<number[]> {
  return page.evaluate(
    (ms) =>
      new Promise<number[]>((resolve) => {
        const out: number[] = [];
        let last = performance.now();
        const end = last + ms;
        const step = (now: number) => {
          out.push(now - last);
          last = now;
          if (now < end) requestAnimationFrame(step);
          else resolve(out);
        };
        requestAnimationFrame(step);
      }),
    ms,
  );
}

const variables = ["tags:", ...Array.from({ length: TAGS }, (_, i) => `  - { tag: bench/t${String(i).padStart(4, "0")}, driver: sim, type: float64, unit: degC }`), `  - { tag: ${HISTORY_TAG}, driver: idle, type: float64 }`].join("\n");

const h = await startConsoleHarness(import.meta.path, {
  name: "bench",
  files: {
    "drivers.yml": "drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 1000 } }\n  - { id: idle, type: simulator, enabled: false }\n",
    "variables.yml": variables + "\n",
  },
});
const rows: BenchRow[] = [];
try {
  // ---- first load: scripts of the login page, then of the overview once logged in ----
  const page = await h.open(null, "/");
  const scripts = new Set<string>();
  page.on("response", (r) => {
    const url = new URL(r.url());
    if (url.pathname.endsWith(".js")) scripts.add(url.pathname);
  });
  await page.reload({ waitUntil: "networkidle" });
  await h.login(page, "viewer");
  await page.waitForLoadState("networkidle");
  const gzBytes = [...scripts].reduce((sum, p) => sum + statSync(join(BUILD_DIR, `${p}.gz`)).size, 0);
  const brBytes = [...scripts].reduce((sum, p) => sum + statSync(join(BUILD_DIR, `${p}.br`)).size, 0);
  rows.push({ metric: `first load JS, gzip (${scripts.size} scripts)`, value: gzBytes / 1024, unit: "KiB", baseline: 150, ratio: gzBytes / 1024 / 150 });
  rows.push({ metric: "first load JS, brotli (as served)", value: brBytes / 1024, unit: "KiB" });
  await page.context().close();

  // ---- tags page: 1,000 tags at 1 Hz, against an idle page under the same load ----
  const idle = await h.open("viewer", `/tags/${HISTORY_TAG}`);
  await idle.getByText("No values in this range").waitFor({ timeout: 30_000 });
  const idleDeltas = await frameTimes(idle, MEASURE_MS);
  await idle.context().close();
  const tags = await h.open("viewer", "/tags");
  // the 1,000 live tags and the history tag (no value: its driver is off)
  await tags.waitForFunction((n) => Number(document.querySelector("table[data-testid=tags]")?.getAttribute("data-rows")) === n + 1, TAGS, { timeout: 60_000 });
  // every live row in view has a value from the stream before measuring (the table draws only those)
  await tags.waitForFunction(() => Array.from(document.querySelectorAll('tr[data-tag^="bench/"] [data-testid=value]')).every((c) => /\d/.test(c.textContent ?? "")), undefined, { timeout: 30_000 });
  const deltas = await frameTimes(tags, MEASURE_MS);
  await h.shot(tags, "tags-1000", { fullPage: false });
  const p99 = percentile(deltas, 99);
  rows.push({ metric: `tags page, ${TAGS} tags at 1 Hz: frame time p99 (target < 33; baseline: idle page)`, value: p99, unit: "ms", baseline: percentile(idleDeltas, 99), ratio: p99 / percentile(idleDeltas, 99) });
  rows.push({ metric: `tags page, ${TAGS} tags at 1 Hz: frame time p50`, value: percentile(deltas, 50), unit: "ms", baseline: percentile(idleDeltas, 50) });
  rows.push({ metric: "tags page: frames over 20 ms (of all measured in 15 s)", value: deltas.filter((d) => d > 20).length, unit: `of ${deltas.length}`, baseline: idleDeltas.filter((d) => d > 20).length });
  await tags.context().close();

  // ---- 7-day trend: one value a minute for 7 days, already in the log ----
  const now = Date.now();
  const frames: Frame[] = [];
  for (let t = now - 7 * DAY_MS; t < now; t += 60_000) frames.push({ kind: "data", tag: HISTORY_TAG, value: 20 + 5 * Math.sin(t / 3_600_000), ts: t * 1000, quality: 0, source: "bench" });
  await h.g.gw.ctx.log.append(frames);
  const trend = await h.open("viewer", `/tags/${HISTORY_TAG}`);
  await trend.locator(".trend").waitFor({ timeout: 30_000 });
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    for (const preset of ["5m", "7d"]) {
      const t0: number = await trend.evaluate(() => performance.now());
      await trend.getByTestId(`preset-${preset}`).click();
      const drawnAt = Number(await trend.waitForFunction((t) => {
        const at = Number(document.querySelector(".trend")?.getAttribute("data-drawn-at") ?? 0);
        return at > t ? at : 0;
      }, t0, { timeout: 30_000 }).then((hnd) => hnd.jsonValue()));
      if (preset === "7d") samples.push(drawnAt - t0);
    }
  }
  const points = Number(await trend.locator(".trend").getAttribute("data-points"));
  await h.shot(trend, "trend-7d");
  rows.push({ metric: `7-day trend, click to drawn (${points} buckets of ${frames.length} frames): median`, value: percentile(samples, 50), unit: "ms", baseline: 500, ratio: percentile(samples, 50) / 500 });
  rows.push({ metric: "7-day trend, click to drawn: worst of 5", value: Math.max(...samples), unit: "ms" });
  await trend.context().close();
  h.checkConsole();
} finally {
  await h.close();
}
report("console", rows);
