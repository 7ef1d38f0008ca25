// The simulator driver: configurable signals per tag, no device. For demos, tests and benchmarks.
import type { DataFrame, Value, Variable } from "../../schemas/index.ts";
import { delay } from "../../storage/time.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink } from "../contract.ts";
import { parseDriverConfig } from "../validate.ts";
import { SimulatorConfig, type Signal } from "./config.ts";

export function signalValue(s: Signal, tMs: number, n: number): number {
  const phase = (tMs % s.periodMs) / s.periodMs;
  const span = s.max - s.min;
  switch (s.shape) {
    case "sine":
      return s.min + span * (0.5 + 0.5 * Math.sin(2 * Math.PI * phase));
    case "ramp":
      return s.min + span * phase;
    case "square":
      return phase < 0.5 ? s.min : s.max;
    case "random":
      return s.min + span * Math.random();
    case "counter":
      return s.min + n;
    default:
      return s.min;
  }
}

export class SimulatorDriver implements Driver {
  private id = "";
  private cfg!: SimulatorConfig;
  private tags: readonly Variable[] = [];

  meta() {
    return { name: "simulator", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read"] };
  }

  init(init: DriverInit): void {
    this.id = init.id;
    this.cfg = parseDriverConfig(init.id, SimulatorConfig, init.config);
    this.tags = init.tags;
  }

  async connect(): Promise<void> {}

  async readLoop(tx: FrameSink, signal: AbortSignal): Promise<void> {
    const groups = new Map<string, Variable[]>();
    // pushed, not copied per tag: a copy per tag was quadratic (10,000 tags: about half a second per start)
    for (const t of this.tags) {
      const list = groups.get(t.group);
      if (list) list.push(t);
      else groups.set(t.group, [t]);
    }
    await Promise.all([...groups].map(([name, tags]) => this.pollGroup(tx, signal, tags, this.cfg.groups[name] ?? this.cfg.intervalMs)));
  }

  private async pollGroup(tx: FrameSink, signal: AbortSignal, tags: Variable[], intervalMs: number): Promise<void> {
    let n = 0;
    const fallback: Signal = { shape: "sine", min: 0, max: 100, periodMs: 60_000 };
    while (!signal.aborted) {
      const now = Date.now();
      const frames: DataFrame[] = new Array(tags.length);
      for (let i = 0; i < tags.length; i++) {
        const t = tags[i]!;
        const v = signalValue(this.cfg.signals[t.tag] ?? fallback, now, n);
        const value: Value = t.type === "bool" ? v >= 0.5 * ((this.cfg.signals[t.tag] ?? fallback).max + (this.cfg.signals[t.tag] ?? fallback).min) : t.type === "float32" || t.type === "float64" ? v : Math.round(v);
        frames[i] = { kind: "data", tag: t.tag, value, ts: now * 1000, quality: 0, source: this.id };
      }
      n++;
      await tx.send(frames);
      if (intervalMs > 0) await delay(intervalMs, signal); // a stop ends the wait at once
      else await new Promise((r) => setImmediate(r));
    }
  }

  async shutdown(): Promise<void> {}
}

export const createSimulator = () => new SimulatorDriver();
