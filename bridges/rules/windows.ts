// Windowed aggregates of one input tag (pure, no I/O): time-weighted moving average, min and max over
// the last N seconds, the rate of a counter that wraps, and a totalizer. Readings arrive irregularly
// (report by exception logs a value only when it changes), so a value holds until the next one: the
// average weighs each by how long it held, and min/max include the value that was holding when the
// window began. Times are the frames' source timestamps in microseconds.
import type { WindowSpec } from "../../schemas/index.ts";

interface Sample {
  ts: number;
  /** the reading (avg/min/max), or the counter unwrapped into a monotone sum (rate) */
  v: number;
}

/** The aggregate after a new reading, or null while it cannot be computed yet (rate: one sample). */
export interface WindowFn {
  push(ts: number, value: number): number | null;
}

export function windowFn(spec: WindowSpec, restoredTotal = 0): WindowFn {
  const spanMicros = spec.seconds * 1e6;
  switch (spec.fn) {
    case "avg":
    case "min":
    case "max":
      return new MovingWindow(spec.fn, spanMicros);
    case "rate":
      return new CounterRate(spanMicros, spec.counterMax, spec.perSeconds);
    default: // "total"
      return new Totalizer(spec.perSeconds, restoredTotal);
  }
}

class MovingWindow implements WindowFn {
  private samples: Sample[] = [];
  private head = 0;

  constructor(
    private readonly fn: "avg" | "min" | "max",
    private readonly span: number,
  ) {}

  push(ts: number, v: number): number {
    this.samples.push({ ts, v });
    const start = ts - this.span;
    // keep one sample at or before the window start: it holds the value from there
    while (this.head + 1 < this.samples.length && this.samples[this.head + 1]!.ts <= start) this.head++;
    if (this.head > 1024 && this.head * 2 > this.samples.length) {
      this.samples = this.samples.slice(this.head);
      this.head = 0;
    }
    return this.fn === "avg" ? this.average(start, ts) : this.extreme();
  }

  private average(start: number, end: number): number {
    let sum = 0;
    let weight = 0;
    for (let i = this.head; i < this.samples.length; i++) {
      const s = this.samples[i]!;
      const from = Math.max(s.ts, start);
      const to = i + 1 < this.samples.length ? this.samples[i + 1]!.ts : end;
      if (to > from) {
        sum += s.v * (to - from);
        weight += to - from;
      }
    }
    // all readings at one instant: their plain mean
    if (weight === 0) return this.samples[this.samples.length - 1]!.v;
    return sum / weight;
  }

  private extreme(): number {
    let r = this.samples[this.head]!.v;
    for (let i = this.head + 1; i < this.samples.length; i++) r = this.fn === "min" ? Math.min(r, this.samples[i]!.v) : Math.max(r, this.samples[i]!.v);
    return r;
  }
}

/**
 * Rate of a counter over the window: the increase between the oldest and the newest reading in it,
 * divided by their distance in time. A fall of the counter is a wrap when counterMax is given (it
 * counted on through counterMax to 0: +counterMax + 1) and a reset to 0 otherwise: never a negative rate.
 */
class CounterRate implements WindowFn {
  private samples: Sample[] = [];
  private last: number | null = null;
  private sum = 0;

  constructor(
    private readonly span: number,
    private readonly counterMax: number | undefined,
    private readonly perSeconds: number,
  ) {}

  push(ts: number, v: number): number | null {
    if (this.last !== null) {
      let inc = v - this.last;
      if (inc < 0) inc = this.counterMax !== undefined ? inc + this.counterMax + 1 : v;
      this.sum += inc;
    }
    this.last = v;
    this.samples.push({ ts, v: this.sum });
    const start = ts - this.span;
    while (this.samples.length > 2 && this.samples[1]!.ts <= start) this.samples.shift();
    const first = this.samples[0]!;
    const dt = ts - first.ts;
    if (this.samples.length < 2 || dt <= 0) return null;
    return ((this.sum - first.v) / dt) * 1e6 * this.perSeconds;
  }
}

/** Integral of a rate over time (each reading holds until the next), in the rate's unit times perSeconds. */
class Totalizer implements WindowFn {
  private prev: Sample | null = null;

  constructor(
    private readonly perSeconds: number,
    private total: number,
  ) {}

  push(ts: number, v: number): number {
    if (this.prev && ts > this.prev.ts) this.total += (this.prev.v * (ts - this.prev.ts)) / 1e6 / this.perSeconds;
    this.prev = { ts, v };
    return this.total;
  }
}
