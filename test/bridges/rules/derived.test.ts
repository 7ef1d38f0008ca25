// Derived tags and windows (bridges/rules/derived.ts, windows.ts) on a real event log: expressions over
// several tags with their quality, a counter rate across a wrap, a totalizer, time-weighted averages,
// an expression error isolated to its tag, and a restart that neither loses nor repeats an output.
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { createDerivedService, type DerivedService } from "../../../bridges/rules/derived.ts";
import { windowFn } from "../../../bridges/rules/windows.ts";
import { AlarmRequest, Catalog, Quality, Variable, WindowSpec, type DataFrame, type EventFrame, type Logged } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { failLogReads } from "../../helpers/faults.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";

setDefaultTimeout(20_000);

let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let service: DerivedService | null = null;

const openLog = () => EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
beforeEach(async () => {
  dir = tempDir();
  log = await openLog();
});
afterEach(async () => {
  await service?.stop();
  service = null;
  await log.close();
  dir.cleanup();
});

const T0 = 1_700_000_000_000_000; // µs
const v = (fields: Record<string, unknown>): Variable => TypeValue.Default(Variable, { type: "float64", ...fields }) as Variable;
const device = (tag: string) => v({ tag, driver: "plc" });
const data = (tag: string, value: number | null, tsSec: number, quality = 0): DataFrame => ({ kind: "data", tag, value, ts: T0 + tsSec * 1e6, quality, source: "plc" });

async function outputs(tag: string): Promise<Logged<DataFrame>[]> {
  const out: Logged<DataFrame>[] = [];
  for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === tag) out.push(f as Logged<DataFrame>);
  return out;
}
async function events(type: string): Promise<Logged<EventFrame>[]> {
  const out: Logged<EventFrame>[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) if ((f as EventFrame).type === type) out.push(f as Logged<EventFrame>);
  return out;
}
async function start(tags: Variable[]): Promise<void> {
  service = createDerivedService({ log, catalog: new Catalog(tags) });
  await service.start();
}
const valuesOf = async (tag: string, n: number) => (await waitFor(async () => ((await outputs(tag)).length >= n ? outputs(tag) : null), `${n} outputs of ${tag}`, 10_000)).map((f) => f.value);

describe("derived tags", () => {
  it("computes an expression over several tags and propagates the worst input quality", async () => {
    await start([device("Boiler.T"), device("Boiler.Tret"), v({ tag: "Boiler.dT", derived: { expr: "Boiler.T - Boiler.Tret" }, reportByException: false })]);
    await log.append([data("Boiler.T", 80, 0), data("Boiler.Tret", 60, 0)]);
    await waitFor(async () => (await outputs("Boiler.dT")).some((f) => f.value === 20), "dT = 20", 10_000);
    expect((await outputs("Boiler.dT")).at(-1)!).toMatchObject({ value: 20, quality: Quality.Good, source: "derived", ts: T0 });
    await log.append([data("Boiler.T", 81, 1, Quality.Uncertain_LastUsableValue)]);
    await waitFor(async () => (await outputs("Boiler.dT")).at(-1)?.value === 21, "dT = 21", 10_000);
    expect((await outputs("Boiler.dT")).at(-1)!.quality).toBe(Quality.Uncertain_LastUsableValue);
    await log.append([data("Boiler.Tret", null, 2, Quality.Bad_CommunicationError)]);
    await waitFor(async () => (await outputs("Boiler.dT")).at(-1)?.quality === Quality.Bad_CommunicationError, "dT Bad", 10_000);
    expect((await outputs("Boiler.dT")).at(-1)!.value).toBeNull();
  });

  it("computes once over the readings of one poll (one source timestamp): never a value mixing this poll's inputs with the last one's", async () => {
    await start([device("T"), device("Tret"), v({ tag: "dT", derived: { expr: "T - Tret" }, reportByException: false })]);
    await log.append([data("T", 10, 0), data("Tret", 5, 0)]);
    expect(await valuesOf("dT", 1)).toEqual([5]);
    await log.append([data("T", 20, 1), data("Tret", 15, 1)]); // one poll: both changed
    await log.append([data("T", 30, 2), data("Tret", 25, 3)]); // two polls: two outputs
    await log.append([data("T", 31, 4)]);
    expect(await valuesOf("dT", 5)).toEqual([5, 5, 15, 5, 6]);
    expect((await outputs("dT")).map((f) => (f.ts - T0) / 1e6)).toEqual([0, 1, 2, 3, 4]);
  });

  it("gives a failing derived expression a Bad_ConfigurationError frame and one mapping.error event while another derived tag goes on", async () => {
    await start([device("A"), device("B"), v({ tag: "ratio", derived: { expr: "A / B" } }), v({ tag: "sum", derived: { expr: "A + B" } })]);
    await log.append([data("A", 10, 0), data("B", 0, 0)]);
    await log.append([data("A", 11, 1)]);
    await waitFor(async () => (await outputs("sum")).at(-1)?.value === 11, "sum = 11", 10_000);
    expect((await outputs("ratio")).map((f) => [f.value, f.quality])).toEqual([[null, Quality.Bad_ConfigurationError]]); // repeated Bad: logged once
    const errors = await events(AlarmRequest.MappingError);
    expect(errors.map((e) => [e.tag, String(e.data?.error)])).toEqual([["ratio", "column 3: division by zero"]]);
    await log.append([data("B", 2, 2)]);
    await waitFor(async () => (await outputs("ratio")).at(-1)?.value === 5.5, "ratio = 5.5", 10_000);
    expect((await events(AlarmRequest.MappingRecovered)).map((e) => e.tag)).toEqual(["ratio"]);
  });

  it("computes a counter rate across a wrap at counterMax as a positive rate", async () => {
    await start([device("Meter.count"), v({ tag: "Meter.rate", window: { fn: "rate", tag: "Meter.count", seconds: 10, counterMax: 65535 }, reportByException: false })]);
    // +5 per second: 65530, 65535, then through 65535 -> 0 to 4, then 9
    await log.append([data("Meter.count", 65530, 0), data("Meter.count", 65535, 1), data("Meter.count", 4, 2), data("Meter.count", 9, 3)]);
    expect(await valuesOf("Meter.rate", 3)).toEqual([5, 5, 5]);
  });

  it("totalizes a flow and keeps the total across a restart", async () => {
    const tags = [device("flow"), v({ tag: "volume", window: { fn: "total", tag: "flow", seconds: 1, perSeconds: 3600 }, reportByException: false })];
    await start(tags);
    // 3600 m3/h for 2 s = 2 m3, then 7200 m3/h for 1 s = 2 m3 more
    await log.append([data("flow", 3600, 0), data("flow", 3600, 1), data("flow", 7200, 2), data("flow", 0, 3)]);
    expect(await valuesOf("volume", 4)).toEqual([0, 1, 2, 4]);
    await service!.stop();
    service = null;
    await log.append([data("flow", 3600, 4), data("flow", 0, 5)]);
    await start(tags);
    expect(await valuesOf("volume", 6)).toEqual([0, 1, 2, 4, 4, 5]);
  });

  it("resumes after a restart from its cursor: outputs of frames logged while stopped come once, none is repeated", async () => {
    const tags = [device("A"), device("B"), v({ tag: "sum", derived: { expr: "A + B" }, reportByException: false })];
    await start(tags);
    await log.append([data("A", 1, 0), data("B", 1, 0)]);
    await valuesOf("sum", 1);
    await service!.stop();
    service = null;
    // the log itself closes and reopens too, like a gateway restart
    await log.close();
    log = await openLog();
    await log.append([data("A", 10, 1), data("B", 20, 2)]);
    await start(tags);
    // A = 10 with B = 1 (B's value at the cursor) gives 11; nothing of the first run is computed again
    expect(await valuesOf("sum", 3)).toEqual([2, 11, 30]);
    await log.append([data("A", 100, 3)]);
    expect(await valuesOf("sum", 4)).toEqual([2, 11, 30, 120]);
  });

  it("retries a failed read and a failed commit of its outputs from its cursor: each output exactly once", async () => {
    const tags = [device("A"), v({ tag: "twice", derived: { expr: "A * 2" }, reportByException: false })];
    await start(tags);
    const reads = failLogReads(log, 2, (o) => o.kinds?.includes("data") === true);
    // the next commit of outputs with the cursor fails once, as a full disk would: nothing of it is committed
    const append = log.append.bind(log);
    let commitFailures = 0;
    (log as unknown as { append: typeof log.append }).append = (frames, opts) => {
      if (opts?.cursor && commitFailures === 0) {
        commitFailures++;
        return Promise.reject(new Error("injected commit failure"));
      }
      return append(frames, opts);
    };
    for (let i = 1; i <= 5; i++) await log.append([data("A", i, i)]);
    expect(await valuesOf("twice", 5)).toEqual([2, 4, 6, 8, 10]);
    expect({ reads: reads.thrown, commits: commitFailures }).toEqual({ reads: 2, commits: 1 });
    await log.append([data("A", 6, 6)]);
    expect(await valuesOf("twice", 6)).toEqual([2, 4, 6, 8, 10, 12]);
    reads.restore();
  });

  it("starts at the head the first time: a new derived tag is not computed over the whole history", async () => {
    await log.append([data("A", 1, 0), data("A", 2, 1)]);
    await start([device("A"), v({ tag: "twice", derived: { expr: "A * 2" }, reportByException: false })]);
    await log.append([data("A", 3, 2)]);
    expect(await valuesOf("twice", 1)).toEqual([6]);
    expect(await outputs("twice")).toHaveLength(1);
  });
});

describe("windows", () => {
  const spec = (fields: Record<string, unknown>) => TypeValue.Default(WindowSpec, { tag: "x", ...fields }) as WindowSpec;
  const run = (fields: Record<string, unknown>, samples: [number, number][]) => {
    const w = windowFn(spec(fields));
    return samples.map(([s, x]) => w.push(s * 1e6, x));
  };

  it("averages over time, each reading weighted by how long it held", () => {
    // 0 for 9 s then 10 for 1 s: the time-weighted mean over 10 s is 1, the mean of the readings 5
    expect(run({ fn: "avg", seconds: 10 }, [[0, 0], [9, 10], [10, 10]])).toEqual([0, 0, 1]);
  });

  it("keeps min and max over the last N seconds, including the value holding at the window start", () => {
    expect(run({ fn: "max", seconds: 5 }, [[0, 50], [1, 10], [4, 20], [6, 15], [12, 30]])).toEqual([50, 50, 50, 20, 30]);
    expect(run({ fn: "min", seconds: 5 }, [[0, 5], [1, 10], [7, 20]])).toEqual([5, 5, 10]);
  });

  it("treats a counter fall without counterMax as a reset, never a negative rate", () => {
    expect(run({ fn: "rate", seconds: 60, perSeconds: 60 }, [[0, 100], [1, 110], [2, 5]])).toEqual([null, 600, 450]);
  });
});
