// One rule at work: a durable log consumer (cursor `rule:<name>`) hands each page's trigger frames to the
// sandbox in one call (in the rules worker: rules-worker.ts; a worker that dies or hangs is the rule's fault), and everything the run produced (commands, derived frames, alarm requests, fault and
// refusal events, the rule's state when it changed) is appended with the cursor in one transaction
// (ctx.commit). So a crash before that commit repeats the run with the same command ids and nothing was
// written; a crash after it does not repeat it: the executor sees each command once.
// Timer runs (meta.everyMs) commit the same way at the cursor the pages reached; a tick is at most once
// and ticks missed while the gateway was down (or while a run was late) are not caught up.
// Faults (a limit, an exception) skip their message, are reported (event `rule.fault`, metric, status)
// and after `faultLimit.count` faults within `faultLimit.windowMs` the rule is disabled (event `rule.disabled`).
import { Counter, Gauge, type Registry } from "prom-client";
import type { Catalog } from "../../schemas/catalog.ts";
import type { DataFrame, EventFrame, Frame, Logged } from "../../schemas/frames.ts";
import type { ConsumerContext, ConsumerLogger, LogConsumer } from "../../storage/consumer.ts";
import { consume, Rewind } from "../../storage/consumer.ts";
import type { EventLog } from "../../storage/log.ts";
import { convertOutputs, type Refusal, type RunOrigin } from "./rule-outputs.ts";
import type { RuleSpec } from "./rule-file.ts";
import { WorkerFault } from "./rules-worker.ts";
import type { BatchResult, RuleMessage, RuleSandbox } from "./sandbox.ts";

export interface RuleLogger extends ConsumerLogger {
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface FaultLimit {
  count: number;
  windowMs: number;
}

export const DEFAULT_FAULT_LIMIT: FaultLimit = { count: 5, windowMs: 60_000 };
/** state JSON kept per rule (a rule is logic, not a database) */
export const STATE_BYTES = 64 * 1024;
/** log lines per rule per 10 s; more are counted and dropped */
const LOG_LINES_PER_WINDOW = 100;

export class RuleMetrics {
  readonly runs: Counter<"rule">;
  readonly faults: Counter<"rule" | "kind">;
  readonly refused: Counter<"rule">;
  readonly enabled: Gauge<"rule">;
  readonly dryRunsRunning: Gauge;
  readonly dryRuns: Counter<"outcome">;
  constructor(registry: Registry) {
    const once = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
    const registers = [registry];
    this.runs = once("edge_rule_runs_total", () => new Counter({ name: "edge_rule_runs_total", help: "Rule runs (messages and timer ticks)", labelNames: ["rule"], registers }));
    this.faults = once("edge_rule_faults_total", () => new Counter({ name: "edge_rule_faults_total", help: "Rule runs stopped by a limit (timeout, memory, stack) or an exception", labelNames: ["rule", "kind"], registers }));
    this.refused = once("edge_rule_refused_total", () => new Counter({ name: "edge_rule_refused_total", help: "Rule outputs refused by the host (write list, checkWrite, setTag list)", labelNames: ["rule"], registers }));
    this.enabled = once("edge_rule_enabled", () => new Gauge({ name: "edge_rule_enabled", help: "1 while the rule runs", labelNames: ["rule"], registers }));
    this.dryRunsRunning = once("edge_rule_dry_runs_running", () => new Gauge({ name: "edge_rule_dry_runs_running", help: "Dry runs of rules in progress", registers }));
    this.dryRuns = once("edge_rule_dry_runs_total", () => new Counter({ name: "edge_rule_dry_runs_total", help: "Dry runs ended, by outcome: done, stopped (limit faults), aborted (the client went away), failed", labelNames: ["outcome"], registers }));
  }
}

export interface RunnerDeps {
  log: EventLog;
  catalog: Catalog;
  logger: RuleLogger;
  metrics?: RuleMetrics;
  faultLimit?: FaultLimit;
  /** consumer retry after a read error (tests shorten it) */
  retry?: { initialMs: number; maxMs: number };
}

export const ruleSource = (name: string) => `rule:${name}`;
export const ruleCursor = ruleSource;

const event = (type: string, rule: string, data: Record<string, unknown>): EventFrame => ({ kind: "event", type, source: ruleSource(rule), ts: Date.now() * 1000, data });

export class RuleRunner {
  private consumer: LogConsumer | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private timerBusy = false;
  /** last offset whose page was handled (its outputs committed): where a timer run commits the cursor */
  private handled = 0;
  private committedState: string;
  private readonly triggers: Set<string>;
  private faultTimes: number[] = [];
  private logWindow = { start: 0, lines: 0, dropped: 0 };
  runs = 0;
  faults = 0;
  refusedCount = 0;
  private runMicros = 0;
  lastError: string | null = null;
  lastErrorAt: string | null = null;
  /** set when the rule disabled itself after repeated faults */
  disabledReason: string | null = null;
  /** called once when the rule disables itself (the service records it) */
  onDisabled: ((reason: string) => void) | null = null;

  constructor(
    private readonly deps: RunnerDeps,
    readonly spec: RuleSpec,
    private readonly sandbox: RuleSandbox,
  ) {
    this.triggers = new Set(spec.meta.triggers);
    this.committedState = sandbox.state;
  }

  get name(): string {
    return this.spec.name;
  }

  start(): void {
    const { log } = this.deps;
    this.handled = log.cursor(ruleCursor(this.name));
    this.deps.metrics?.enabled.set({ rule: this.name }, 1);
    if (this.triggers.size > 0) {
      this.consumer = consume(log, {
        name: ruleCursor(this.name),
        from: "cursor",
        kinds: ["data"],
        logger: this.deps.logger,
        ...(this.deps.retry ? { retry: this.deps.retry } : {}),
        handler: (page, ctx) => this.exclusive(() => this.handlePage(page, ctx)),
      });
    }
    const every = this.spec.meta.everyMs;
    if (every !== undefined) this.timer = setInterval(() => this.tick(), every);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.consumer?.stop();
    this.consumer = null;
    await this.queue;
    this.deps.metrics?.enabled.set({ rule: this.name }, 0);
    this.sandbox.close();
  }

  /** the rule's state as last read back from its sandbox (JSON) */
  get stateJson(): string {
    return this.sandbox.state;
  }

  lagFrames(): number {
    return this.consumer?.status().lagFrames ?? 0;
  }

  usPerRun(): number {
    return this.runs === 0 ? 0 : this.runMicros / this.runs;
  }

  /** Runs one at a time: pages and timer ticks share the sandbox and the state. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async handlePage(page: Logged[], ctx: ConsumerContext): Promise<void> {
    const last = page[page.length - 1]!.offset;
    if (this.disabledReason) return;
    const trig = page.filter((f) => this.triggers.has((f as DataFrame).tag)) as Logged<DataFrame>[];
    if (trig.length === 0) {
      this.handled = last;
      return;
    }
    const msgs: RuleMessage[] = trig.map((f) => ({ tag: f.tag, value: f.value, quality: f.quality, ts: f.ts }));
    const origin: RunOrigin = {
      offsetOf: (i) => trig[i]!.offset,
      tsOf: (i) => trig[i]!.ts,
      loggedAtOf: (i) => trig[i]!.loggedAt,
    };
    const t0 = performance.now();
    let result: BatchResult;
    try {
      result = await this.sandbox.runBatch(msgs);
    } catch (e) {
      if (!(e instanceof WorkerFault) || e.reason === "stopped") throw e;
      return this.pageLost(e, origin, trig[0]!.offset, last, ctx);
    }
    this.account(trig.length, performance.now() - t0);
    const frames = this.framesOf(result, origin, (i) => trig[i]?.offset ?? last);
    if (frames.length > 0) await this.committing(() => ctx.commit(frames, last));
    this.afterCommit();
    this.handled = last;
  }

  /**
   * The rules worker died or hung while running this page: the rule's fault (`rule.fault` kind worker,
   * counted toward disabling it). Nothing of the page was committed, so it runs again from the cursor in
   * the new worker (Rewind), from the committed state, with the same command ids; once the faults disable
   * the rule, the page is passed with the disabling committed at its cursor.
   */
  private async pageLost(e: WorkerFault, origin: RunOrigin, first: number, last: number, ctx: ConsumerContext): Promise<void> {
    const frames = this.framesOf({ outputs: [], faults: [{ kind: "worker", message: e.message, at: 0 }], state: this.committedState }, origin, () => first);
    if (this.disabledReason) {
      await this.committing(() => ctx.commit(frames, last));
      this.afterCommit();
      this.handled = last;
      return;
    }
    await this.deps.log.append(frames);
    await this.sandbox.load(this.committedState);
    throw new Rewind();
  }

  private tick(): void {
    if (this.timerBusy || this.disabledReason) return; // a late run is not queued twice: ticks are at most once
    this.timerBusy = true;
    const tickMs = Date.now();
    void this.exclusive(async () => {
      const t0 = performance.now();
      const result = await this.sandbox.runTimer(tickMs).catch((e: unknown): BatchResult => {
        // a tick is at most once: the worker's fault is the tick's fault, it is not run again
        if (!(e instanceof WorkerFault) || e.reason === "stopped") throw e;
        return { outputs: [], faults: [{ kind: "worker", message: e.message, at: -1 }], state: this.committedState };
      });
      this.account(1, performance.now() - t0);
      const now = tickMs * 1000;
      const frames = this.framesOf(result, { offsetOf: () => -1, tsOf: () => now, loggedAtOf: () => now, tick: tickMs }, () => this.handled);
      if (frames.length > 0) await this.committing(() => this.deps.log.append(frames, { cursor: { name: ruleCursor(this.name), offset: this.handled } }));
      this.afterCommit();
    })
      .catch((err) => this.noteError(`timer run not recorded: ${(err as Error)?.message ?? err}`, err))
      .finally(() => (this.timerBusy = false));
  }

  private account(runs: number, ms: number): void {
    this.runs += runs;
    this.runMicros += ms * 1000;
    this.deps.metrics?.runs.inc({ rule: this.name }, runs);
  }

  /** The frames of a run: outputs, refusals, faults (and the disabling), the state when it changed. */
  private framesOf(result: BatchResult, origin: RunOrigin, offsetAt: (i: number) => number): Frame[] {
    const converted = convertOutputs(this.name, this.spec.meta, this.deps.catalog, result.outputs, origin, Date.now() * 1000);
    const frames = converted.frames;
    for (const line of converted.logs) this.writeLog(line.level, line.text);
    for (const r of converted.refusals) frames.push(this.refusal(r, offsetAt(r.i)));
    for (const f of result.faults) {
      this.faults++;
      this.deps.metrics?.faults.inc({ rule: this.name, kind: f.kind });
      this.noteError(`${f.kind}: ${f.message}`);
      frames.push(event("rule.fault", this.name, { kind: f.kind, message: f.message, offset: offsetAt(f.at) }));
      this.deps.logger.warn({ rule: this.name, kind: f.kind, offset: offsetAt(f.at) }, `rule ${this.name}: ${f.kind} fault: ${f.message}`);
    }
    const disable = this.checkFaultWindow(result.faults.length);
    if (disable) frames.push(event("rule.disabled", this.name, { reason: disable }));
    if (result.state !== this.committedState) {
      if (result.state.length > STATE_BYTES) {
        this.noteError(`state of ${result.state.length} bytes is over ${STATE_BYTES}: not persisted`);
      } else {
        frames.push(event("rule.state", this.name, { state: JSON.parse(result.state) }));
        this.pendingState = result.state;
      }
    }
    return frames;
  }

  private pendingState: string | null = null;

  /**
   * A failed commit leaves the sandbox ahead of the log: it is reloaded with the committed state, so the
   * retried page runs from the state the log holds (the run is repeated, its outputs were not written).
   */
  private async committing(commit: () => Promise<unknown>): Promise<void> {
    try {
      await commit();
    } catch (e) {
      this.pendingState = null;
      if (this.disabledReason) this.disabledReason = null;
      await this.sandbox.load(this.committedState);
      throw e;
    }
  }

  private afterCommit(): void {
    if (this.pendingState !== null) this.committedState = this.pendingState;
    this.pendingState = null;
    if (this.disabledReason && this.onDisabled) {
      const cb = this.onDisabled;
      this.onDisabled = null;
      // not awaited here: stopping waits for the page being handled, which is this one
      queueMicrotask(() => cb(this.disabledReason!));
    }
  }

  private refusal(r: Refusal, offset: number): EventFrame {
    this.refusedCount++;
    this.deps.metrics?.refused.inc({ rule: this.name });
    this.noteError(`${r.what} refused: ${r.reason}`);
    this.deps.logger.warn({ rule: this.name, ...r }, `rule ${this.name}: ${r.what} refused: ${r.reason}`);
    return event("rule.refused", this.name, { what: r.what, ...(r.tag ? { tag: r.tag } : {}), reason: r.reason, offset });
  }

  /** The reason to disable when this run's faults make `count` within the window, else null. */
  private checkFaultWindow(newFaults: number): string | null {
    if (newFaults === 0 || this.disabledReason) return null;
    const now = Date.now();
    const { count, windowMs } = this.deps.faultLimit ?? DEFAULT_FAULT_LIMIT;
    for (let i = 0; i < newFaults; i++) this.faultTimes.push(now);
    this.faultTimes = this.faultTimes.filter((t) => now - t < windowMs);
    if (this.faultTimes.length < count) return null;
    this.disabledReason = `${this.faultTimes.length} faults within ${windowMs / 1000} s (last: ${this.lastError})`;
    this.deps.logger.error({ rule: this.name }, `rule ${this.name} disabled: ${this.disabledReason}`);
    return this.disabledReason;
  }

  private noteError(text: string, err?: unknown): void {
    this.lastError = text;
    this.lastErrorAt = new Date().toISOString();
    if (err) this.deps.logger.error({ rule: this.name, err }, `rule ${this.name}: ${text}`);
  }

  /** A rule's log line, rate-limited (LOG_LINES_PER_WINDOW per 10 s; the dropped ones are counted). */
  private writeLog(level: "debug" | "info" | "warn" | "error", text: string): void {
    const now = Date.now();
    const w = this.logWindow;
    if (now - w.start >= 10_000) {
      if (w.dropped > 0) this.deps.logger.warn({ rule: this.name, dropped: w.dropped }, `rule ${this.name}: ${w.dropped} log lines dropped (rate limit)`);
      this.logWindow = { start: now, lines: 0, dropped: 0 };
    }
    if (this.logWindow.lines >= LOG_LINES_PER_WINDOW) {
      this.logWindow.dropped++;
      return;
    }
    this.logWindow.lines++;
    const obj = { rule: this.name, ruleLog: true };
    if (level === "debug") this.deps.logger.debug(obj, text);
    else if (level === "info") this.deps.logger.info(obj, text);
    else if (level === "warn") this.deps.logger.warn(obj, text);
    else this.deps.logger.error(obj, text);
  }
}
