// Part of `bun run bench rules`: one trivial user rule (QuickJS sandbox) on every frame of a backlog,
// frames/s through its durable consumer, against the same consumer with an empty handler. Target (issue
// #20): at least 100,000 frames/s. The rule's batch of a page crosses into the sandbox in one call.
import { join } from "node:path";
import pino from "pino";
import { Catalog, type DataFrame } from "../../../schemas/index.ts";
import { consume, EventLog } from "../../../storage/index.ts";
import { loadRule } from "../../../bridges/rules/rule-file.ts";
import { RuleRunner } from "../../../bridges/rules/rule-runner.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import type { BenchRow } from "../report.ts";

const FRAMES = 200_000;
const TAGS = 10;
const frame = (i: number): DataFrame => ({ kind: "data", tag: `t${i % TAGS}`, value: i * 0.5, ts: 1_700_000_000_000_000 + i, quality: 0, source: "bench" });
const RULE = `export const meta = { triggers: [${Array.from({ length: TAGS }, (_, i) => `"t${i}"`).join(", ")}] };
export function onMessage(msg) { if (msg.value > 1e12) log.info("never") }`;

async function timeConsumer(log: EventLog): Promise<number> {
  let seen = 0;
  const t0 = performance.now();
  const c = consume(log, { name: "bench-bare", from: 1, kinds: ["data"], handler: (page) => void (seen += page.length) });
  await waitFor(() => seen >= FRAMES, "bare consumer", 120_000, 5);
  const ms = performance.now() - t0;
  await c.stop();
  return (FRAMES / ms) * 1000;
}

/** A rule's consumer over the whole backlog from its start (a fresh cursor per name). */
async function timeRule(log: EventLog, name: string): Promise<{ fps: number; usPerRun: number }> {
  const { spec, sandbox } = await loadRule(`rules/${name}.js`, RULE, new Catalog());
  const runner = new RuleRunner({ log, catalog: new Catalog(), logger: pino({ level: "silent" }) }, spec, sandbox);
  const t0 = performance.now();
  runner.start();
  await waitFor(() => runner.runs >= FRAMES, "rule runs", 120_000, 5);
  const ms = performance.now() - t0;
  const usPerRun = runner.usPerRun();
  await runner.stop();
  return { fps: (FRAMES / ms) * 1000, usPerRun };
}

export async function measure(): Promise<BenchRow[]> {
  const dir = tempDir();
  const log = await EventLog.open({ path: join(dir.path, "log.duckdb") });
  try {
    for (let i = 0; i < FRAMES; i += 5000) await log.append(Array.from({ length: 5000 }, (_, k) => frame(i + k)));
    const bare = await timeConsumer(log);
    // the first pass warms the JIT tiers of the host and of the QuickJS WebAssembly (the first pages run
    // about 3x slower); the second, another rule with its own cursor and sandbox, is the steady state
    const cold = await timeRule(log, "cold");
    const rule = await timeRule(log, "bench");
    return [
      { metric: "scripts: one trivial rule on every frame (backlog of 200k)", value: rule.fps, unit: "frames/s", baseline: bare, ratio: rule.fps / bare },
      { metric: "scripts: the same, first rule of the process (cold JIT)", value: cold.fps, unit: "frames/s" },
      { metric: "scripts: sandbox time per message (batch of a page)", value: rule.usPerRun, unit: "us" },
    ];
  } finally {
    await log.close();
    dir.cleanup();
  }
}
