// JS plugin driver through the process boundary vs the same driver built in: frames/s out of readLoop
// (into a counting sink, so the log's own ceiling does not hide the boundary), the cost of one poll
// round trip, and the time from spawn to a plugin ready to poll (instantiation).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { DRIVER_API_VERSION, type Driver, type DriverFactory, type DriverInit, type FrameSink } from "../../../drivers/contract.ts";
import { DriverManager } from "../../../drivers/manager.ts";
import { EventLog } from "../../../storage/index.ts";
import { PluginDriver, type PluginDriverHost } from "../../../drivers/plugins/driver.ts";
import { PluginProcess } from "../../../drivers/plugins/host.ts";
import { sealFiles } from "../../../drivers/plugins/package.ts";
import { verifyPlugin } from "../../../drivers/plugins/trust.ts";
import { Variable, type DataFrame } from "../../../schemas/index.ts";
import { tempDir } from "../../helpers/index.ts";
import { percentile, type BenchRow } from "../report.ts";

const TAGS = 100;
const RUN_MS = 2000;
const SOURCE = `export default () => {
  let tags = [], n = 0;
  return {
    init(i) { tags = i.tags; },
    poll() { n++; return tags.map((t) => ({ tag: t.tag, value: n })); },
  };
};
`;

/** The same driver, built in: one batch of one frame per tag per loop turn. */
class CounterDriver implements Driver {
  private tags: DriverInit["tags"] = [];
  private id = "";
  meta = () => ({ name: "counter", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read"] });
  init(i: DriverInit) {
    this.tags = i.tags;
    this.id = i.id;
  }
  async connect() {}
  async readLoop(tx: FrameSink, signal: AbortSignal) {
    let n = 0;
    while (!signal.aborted) {
      n++;
      const now = Date.now() * 1000;
      await tx.send(this.tags.map((t): DataFrame => ({ kind: "data", tag: t.tag, value: n, ts: now, quality: 0, source: this.id })));
      await new Promise((r) => setImmediate(r));
    }
  }
  async shutdown() {}
}

function countingSink(): FrameSink & { frames: number } {
  const sink = {
    frames: 0,
    isPaused: false,
    send(f: DataFrame[]) {
      sink.frames += f.length;
      return Promise.resolve();
    },
    commit(f: DataFrame[]) {
      sink.frames += f.length;
      return Promise.resolve();
    },
    event() {},
    heartbeat() {},
  };
  return sink;
}

async function framesPerSecond(d: Driver, init: DriverInit): Promise<number> {
  await d.init(init);
  await d.connect(undefined, new AbortController().signal);
  const sink = countingSink();
  const stop = new AbortController();
  const t0 = performance.now();
  const loop = d.readLoop(sink, stop.signal);
  await Bun.sleep(RUN_MS);
  stop.abort();
  const frames = sink.frames;
  const s = (performance.now() - t0) / 1000;
  await loop.catch(() => undefined);
  await d.shutdown();
  return frames / s;
}

/** Frames/s committed to a real event log by one driver under the driver manager (what ingest sees). */
async function loggedPerSecond(dataDir: string, factory: DriverFactory, config: Record<string, unknown>, tags: Variable[]): Promise<number> {
  const log = await EventLog.open({ path: join(dataDir, `log-${Math.random().toString(36).slice(2)}.duckdb`) });
  const mgr = new DriverManager({ log, factories: new Map([["x", factory]]), settings: { watchdogMs: 0 } });
  mgr.add({ id: "c", type: "x", enabled: true, config }, undefined, tags);
  await Bun.sleep(300); // spawn, warm up
  const h0 = log.head;
  const t0 = performance.now();
  await Bun.sleep(RUN_MS);
  const rate = (log.head - h0) / ((performance.now() - t0) / 1000);
  await mgr.stop();
  await log.close();
  return rate;
}

export async function measure(): Promise<BenchRow[]> {
  const tmp = tempDir("bench-plugins-");
  try {
    const dir = join(tmp.path, "counter");
    mkdirSync(dir);
    writeFileSync(join(dir, "plugin.toml"), `name = "counter"\nkind = "driver"\nversion = "1.0.0"\nentry = "index.js"\napi = { min = 1, max = 1 }\n`);
    writeFileSync(join(dir, "index.js"), SOURCE);
    await sealFiles(dir);
    const plugin = await verifyPlugin(dir, { keys: [], allowUnsigned: true });
    const host: PluginDriverHost = { current: () => plugin, attach() {}, detach() {}, refused() {}, processOptions: () => ({ memoryMb: 768, callTimeoutMs: 5000 }), log() {} };
    const tags = Array.from({ length: TAGS }, (_, i) => Value.Default(Variable, { tag: `c/${i}`, driver: "c", type: "float64" }) as Variable);
    const init = (config: Record<string, unknown>): DriverInit => ({ id: "c", config, tags });
    const builtIn = await framesPerSecond(new CounterDriver(), init({}));
    const viaPlugin = await framesPerSecond(new PluginDriver("counter", host), init({ intervalMs: 0 }));
    const loggedBuiltIn = await loggedPerSecond(tmp.path, () => new CounterDriver(), {}, tags);
    const loggedPlugin = await loggedPerSecond(tmp.path, () => new PluginDriver("counter", host), { intervalMs: 0 }, tags);
    // instantiation: spawn + load + init, ready to poll; and one poll round trip (1 tag)
    const startMs: number[] = [];
    const rtUs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const p = await PluginProcess.start({ name: "counter", dir, entry: "index.js", kind: "driver", memoryMb: 768, callTimeoutMs: 5000 });
      await p.call("init", [{ id: "c", config: {}, tags: [{ tag: "c/0", type: "float64", group: "default", access: "R" }] }]);
      startMs.push(performance.now() - t0);
      for (let j = 0; j < 200; j++) {
        const t1 = performance.now();
        await p.call("poll");
        rtUs.push((performance.now() - t1) * 1000);
      }
      p.kill();
      await p.ended;
    }
    return [
      { metric: `JS plugin driver vs built in, committed to the log, ${TAGS} frames a poll`, value: loggedPlugin, unit: "frames/s", baseline: loggedBuiltIn, ratio: loggedPlugin / loggedBuiltIn },
      { metric: `JS plugin driver vs built in, out of readLoop (no log), ${TAGS} frames a poll`, value: viaPlugin, unit: "frames/s", baseline: builtIn, ratio: viaPlugin / builtIn },
      { metric: "plugin instantiation: spawn + load + init, median", value: percentile(startMs, 50), unit: "ms" },
      { metric: "plugin instantiation, p95", value: percentile(startMs, 95), unit: "ms" },
      { metric: "poll round trip (1 frame), median", value: percentile(rtUs, 50), unit: "µs" },
      { metric: "poll round trip (1 frame), p99", value: percentile(rtUs, 99), unit: "µs" },
    ];
  } finally {
    tmp.cleanup();
  }
}
