// A dry run: a rule (saved or unsaved text) run over recorded history in a sandbox of its own, with
// nothing appended and nothing written: what it would have done (commands, setTag, alarms, logs, refusals,
// faults), each with the time of its trigger. Timer rules get their ticks at `everyMs` steps of the range,
// interleaved with the trigger frames by source time. Starts from the rule's committed state (or {}).
import { AlarmRequest } from "../../schemas/alarms.ts";
import type { Catalog } from "../../schemas/catalog.ts";
import type { DataFrame, Logged } from "../../schemas/frames.ts";
import type { DryRunResult, RuleMeta } from "../../schemas/rules.ts";
import type { EventLog } from "../../storage/log.ts";
import { loadRule } from "./rule-file.ts";
import { DEFAULT_FAULT_LIMIT } from "./rule-runner.ts";
import { convertOutputs, type RunOrigin } from "./rule-outputs.ts";
import { localSandbox, type BatchResult, type RuleMessage, type RuleSandbox, type SandboxFactory } from "./sandbox.ts";
import { WorkerFault } from "./rules-worker.ts";

/** each list of the answer keeps its first LIST_CAP entries */
const LIST_CAP = 1000;
/** trigger frames and ticks replayed at most (each costs CPU of a 2-core machine, in the dry run's worker) */
export const DRY_RUN_MAX_RUNS = 200_000;
/**
 * Limit faults (time, memory, stack) after which a dry run stops: the live rule is disabled after as many
 * (DEFAULT_FAULT_LIMIT), and each costs up to the rule's time limit of a core. Measured when dry runs ran
 * on the gateway's thread: `while(true){}` with timeLimitMs 50 over 60 s of a 5 Hz tag ran 25 s, polls
 * 200 ms apart came 2.1 s apart meanwhile; a dry run has its own worker now, but the core is still shared.
 */
export const DRY_RUN_MAX_LIMIT_FAULTS = DEFAULT_FAULT_LIMIT.count;

/** `stopped` of a dry run whose caller went away */
export const DRY_RUN_ABORTED = "stopped: the client went away";

export interface DryRunOptions {
  /** the rule's state to start from (JSON; default {}) */
  stateJson?: string;
  /** aborts when the caller goes away: the run stops */
  signal?: AbortSignal;
  /** where the sandbox runs (default this thread; the gateway gives each dry run a worker of its own) */
  make?: SandboxFactory;
}

export interface DryRunRange {
  fromMicros: number;
  toMicros: number;
}

const iso = (micros: number) => new Date(micros / 1000).toISOString();
const scalar = (v: unknown): string | number | boolean | null => (v === null || typeof v === "number" || typeof v === "boolean" || typeof v === "string" ? v : typeof v === "bigint" ? v.toString() : JSON.stringify(v));

/** First and last offsets committed within [from, to] (commit time), or null when none. */
async function offsetRange(log: EventLog, r: DryRunRange): Promise<[number, number] | null> {
  const conn = await log.connect();
  try {
    const rows = (await conn.runAndReadAll(`SELECT min("offset")::DOUBLE, max("offset")::DOUBLE FROM log WHERE logged_at BETWEEN $from AND $to`, { from: BigInt(Math.trunc(r.fromMicros)), to: BigInt(Math.trunc(r.toMicros)) })).getRows();
    const [lo, hi] = rows[0] ?? [null, null];
    return lo === null || hi === null ? null : [Number(lo), Number(hi)];
  } finally {
    conn.closeSync();
  }
}

const emptyResult = (): DryRunResult => ({ frames: 0, timerRuns: 0, commands: [], setTags: [], alarms: [], logs: [], refused: [], faults: [], truncated: false });

class Collector {
  readonly result = emptyResult();
  /** limit faults seen so far (the run stops at DRY_RUN_MAX_LIMIT_FAULTS) */
  limitFaults = 0;
  constructor(
    private readonly name: string,
    private readonly meta: Parameters<typeof convertOutputs>[1],
    private readonly catalog: Catalog,
    readonly signal?: AbortSignal,
  ) {}

  private add<T>(list: T[], item: T): void {
    if (list.length < LIST_CAP) list.push(item);
    else this.result.truncated = true;
  }

  take(run: BatchResult, origin: RunOrigin): void {
    const c = convertOutputs(this.name, this.meta, this.catalog, run.outputs, origin, Date.now() * 1000);
    const atOf = (i: number) => iso(origin.tsOf(i));
    c.frames.forEach((f, n) => {
      const at = atOf(c.producedBy[n]!);
      if (f.kind === "cmd") this.add(this.result.commands, { tag: f.tag, value: scalar(f.value), at });
      else if (f.kind === "data") this.add(this.result.setTags, { tag: f.tag, value: scalar(f.value), at });
      else if (f.kind === "event") {
        const d = f.data ?? {};
        this.add(this.result.alarms, { action: f.type === AlarmRequest.Raise ? "raise" : "clear", name: String(d.name), ...(d.priority ? { priority: String(d.priority) } : {}), ...(d.message ? { message: String(d.message) } : {}), at });
      }
    });
    for (const l of c.logs) this.add(this.result.logs, { level: l.level, text: l.text, at: atOf(l.i) });
    for (const r of c.refusals) this.add(this.result.refused, { what: r.what, ...(r.tag ? { tag: r.tag } : {}), reason: r.reason, at: atOf(r.i) });
    for (const f of run.faults) {
      this.add(this.result.faults, { kind: f.kind, message: f.message, at: atOf(f.at) });
      if (f.rebuilt && ++this.limitFaults === DRY_RUN_MAX_LIMIT_FAULTS) {
        this.result.stopped = `stopped after ${DRY_RUN_MAX_LIMIT_FAULTS} limit faults (the live rule is disabled after ${DEFAULT_FAULT_LIMIT.count} faults within ${DEFAULT_FAULT_LIMIT.windowMs / 1000} s)`;
      }
    }
  }

  get stopped(): boolean {
    return this.limitFaults >= DRY_RUN_MAX_LIMIT_FAULTS || this.signal?.aborted === true;
  }
}

/**
 * Runs rule `name` (its text `source`) over the history in `range`; never appends to the log. When
 * `signal` aborts (the HTTP client left) the run stops and returns what it has, with `stopped` saying so:
 * nobody is waiting for it. Between batches the signal is checked here; inside a batch only stopping the
 * sandbox's worker ends it (the caller does, scripts.ts): a batch in this thread runs to its end.
 */
export async function dryRun(log: EventLog, catalog: Catalog, name: string, source: string, range: DryRunRange, opts: DryRunOptions = {}): Promise<DryRunResult> {
  const { stateJson = "{}", signal, make = localSandbox } = opts;
  let loaded: Awaited<ReturnType<typeof loadRule>>;
  try {
    loaded = await loadRule(`rules/${name}.js`, source, catalog, stateJson, make);
  } catch (e) {
    if (e instanceof WorkerFault && signal?.aborted) return { ...emptyResult(), stopped: DRY_RUN_ABORTED };
    throw e;
  }
  const { spec, sandbox } = loaded;
  const out = new Collector(name, spec.meta, catalog, signal);
  try {
    await replay(log, range, spec.meta, sandbox, out);
  } catch (e) {
    // stopping the worker is how an abort ends a run in it; a worker that died or hung ends the dry run
    if (!(e instanceof WorkerFault)) throw e;
    if (!signal?.aborted) {
      out.result.faults.push({ kind: "worker", message: e.message, at: new Date().toISOString() });
      out.result.stopped = `stopped: ${e.message}`;
    }
  } finally {
    sandbox.close();
  }
  if (signal?.aborted) out.result.stopped = DRY_RUN_ABORTED;
  return out.result;
}

/** Trigger frames of the range in order, with the timer's ticks between them. */
async function replay(log: EventLog, range: DryRunRange, meta: RuleMeta, sandbox: RuleSandbox, out: Collector): Promise<void> {
  const triggers = new Set(meta.triggers);
  const every = meta.everyMs;
  let nextTick = every === undefined ? Infinity : range.fromMicros + every * 1000;
  let runs = 0;
  const ticksUntil = async (micros: number) => {
    while (nextTick <= micros && nextTick <= range.toMicros && runs < DRY_RUN_MAX_RUNS && !out.stopped) {
      const at = nextTick;
      out.take(await sandbox.runTimer(at / 1000), { offsetOf: () => -1, tsOf: () => at, loggedAtOf: () => at, tick: at / 1000 });
      out.result.timerRuns++;
      runs++;
      nextTick += every! * 1000;
    }
  };
  const offsets = triggers.size > 0 ? await offsetRange(log, range) : null;
  if (offsets) {
    for await (const page of log.pages({ from: offsets[0], to: offsets[1], kinds: ["data"] })) {
      const trig = (page as Logged<DataFrame>[]).filter((f) => triggers.has(f.tag));
      for (let k = 0; k < trig.length && runs < DRY_RUN_MAX_RUNS && !out.stopped; ) {
        // messages up to the next tick go in one batch, then the tick
        let end = k;
        while (end < trig.length && trig[end]!.ts < nextTick && end - k < DRY_RUN_MAX_RUNS - runs) end++;
        if (end > k) await runMessages(sandbox, trig.slice(k, end), out);
        runs += end - k;
        k = end;
        if (k < trig.length) await ticksUntil(trig[k]!.ts);
      }
      if (runs >= DRY_RUN_MAX_RUNS) {
        out.result.truncated = true;
        break;
      }
      if (out.stopped) break;
    }
  }
  await ticksUntil(range.toMicros);
}

async function runMessages(sandbox: RuleSandbox, trig: Logged<DataFrame>[], out: Collector): Promise<void> {
  const msgs: RuleMessage[] = trig.map((f) => ({ tag: f.tag, value: f.value, quality: f.quality, ts: f.ts }));
  const run = await sandbox.runBatch(msgs, { maxLimitFaults: DRY_RUN_MAX_LIMIT_FAULTS - out.limitFaults });
  out.result.frames += run.ran ?? msgs.length;
  out.take(run, { offsetOf: (i) => trig[i]!.offset, tsOf: (i) => trig[i]?.ts ?? 0, loggedAtOf: (i) => trig[i]?.loggedAt ?? 0 });
}
