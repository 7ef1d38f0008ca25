// Part of `bun run bench rules`: one trivial user rule (QuickJS sandbox, in the rules worker as the gateway
// runs it) on every frame of a backlog, frames/s through its durable consumer, against the same consumer
// with an empty handler; the same rule in the gateway's thread; and what a busy rule does to the event
// loop. Target (issue #20): at least 100,000 frames/s. The rule's batch of a page crosses in one call.
import { join } from "node:path";
import pino from "pino";
import { Catalog, type DataFrame } from "../../../schemas/index.ts";
import { consume, EventLog } from "../../../storage/index.ts";
import { loadRule } from "../../../bridges/rules/rule-file.ts";
import { RuleRunner } from "../../../bridges/rules/rule-runner.ts";
import { RulesWorker, workerSandbox } from "../../../bridges/rules/rules-worker.ts";
import { localSandbox, type SandboxFactory } from "../../../bridges/rules/sandbox.ts";
import { tempDir, timerLateness, waitFor } from "../../helpers/index.ts";
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
async function timeRule(log: EventLog, name: string, make: SandboxFactory): Promise<{ fps: number; usPerRun: number }> {
  const { spec, sandbox } = await loadRule(`rules/${name}.js`, RULE, new Catalog(), "{}", make);
  const runner = new RuleRunner({ log, catalog: new Catalog(), logger: pino({ level: "silent" }) }, spec, sandbox);
  const t0 = performance.now();
  runner.start();
  await waitFor(() => runner.runs >= FRAMES, "rule runs", 120_000, 5);
  const ms = performance.now() - t0;
  const usPerRun = runner.usPerRun();
  await runner.stop();
  return { fps: (FRAMES / ms) * 1000, usPerRun };
}

const BUSY = `export const meta = { triggers: ["busy"], timeLimitMs: 100 };
export function onMessage(msg) { const until = Date.now() + 30; while (Date.now() < until) {} }`;

/** The worst lateness of a 1 ms timer while a rule works 30 ms on each of 10 frames; ms. */
async function busyLateness(log: EventLog, name: string, make: SandboxFactory): Promise<number> {
  const { spec, sandbox } = await loadRule(`rules/${name}.js`, BUSY, new Catalog(), "{}", make);
  const runner = new RuleRunner({ log, catalog: new Catalog(), logger: pino({ level: "silent" }) }, spec, sandbox);
  await log.commitCursor(`rule:${name}`, log.head);
  runner.start();
  const worst = await timerLateness(async () => {
    await log.append(Array.from({ length: 10 }, (_, i): DataFrame => ({ kind: "data", tag: "busy", value: i, ts: Date.now() * 1000, quality: 0, source: "bench" })));
    await waitFor(() => runner.runs >= 10, "busy runs", 30_000, 5);
  });
  await runner.stop();
  return worst;
}

export async function measure(): Promise<BenchRow[]> {
  const dir = tempDir();
  const log = await EventLog.open({ path: join(dir.path, "log.duckdb") });
  try {
    for (let i = 0; i < FRAMES; i += 5000) await log.append(Array.from({ length: 5000 }, (_, k) => frame(i + k)));
    const bare = await timeConsumer(log);
    // the first pass warms the JIT tiers of the host and of the QuickJS WebAssembly (the first pages run
    // about 3x slower); the second, another rule with its own cursor and sandbox, is the steady state
    const worker = new RulesWorker();
    try {
      const make = workerSandbox(worker);
      const cold = await timeRule(log, "cold", make);
      const rule = await timeRule(log, "bench", make);
      await timeRule(log, "loopcold", localSandbox); // this thread's JIT warms as the worker's did
      const inLoop = await timeRule(log, "loop", localSandbox);
      const lateWorker = await busyLateness(log, "busyw", make);
      const lateLoop = await busyLateness(log, "busyl", localSandbox);
      return [
        { metric: "scripts: one trivial rule on every frame (backlog of 200k)", value: rule.fps, unit: "frames/s", baseline: bare, ratio: rule.fps / bare },
        { metric: "scripts: the same, first rule of the process (cold JIT)", value: cold.fps, unit: "frames/s" },
        { metric: "scripts: sandbox time per message (batch of a page)", value: rule.usPerRun, unit: "us" },
        { metric: "scripts: the same rule in the gateway's thread (no worker)", value: inLoop.fps, unit: "frames/s", baseline: rule.fps, ratio: inLoop.fps / rule.fps },
        { metric: "scripts: worst 1 ms timer lateness, busy rule (10 x 30 ms) in the worker", value: lateWorker, unit: "ms", baseline: lateLoop, ratio: lateWorker / lateLoop },
      ];
    } finally {
      worker.stop();
    }
  } finally {
    await log.close();
    dir.cleanup();
  }
}
