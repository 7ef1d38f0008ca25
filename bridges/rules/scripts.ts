// The user rules service: every rules/<name>.js of the config directory is loaded (rule-file.ts), run by
// its RuleRunner, and reloaded when its file changes (the folder is watched). An invalid edit is refused
// with file and line (log line, `rule.rejected` event, the rule's status) and the running version stays.
// Enabled/disabled is recorded in the log (`rule.enabled` / `rule.disabled` events, by an operator or after
// repeated faults) and survives restarts. The API (server/api/rules.ts) lists, edits, enables and dry-runs.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { join } from "node:path";
import type { Registry } from "prom-client";
import type { Catalog } from "../../schemas/catalog.ts";
import type { ComponentStatus } from "../../schemas/health.ts";
import type { DryRunResult, RuleView } from "../../schemas/rules.ts";
import { KIND_CODE } from "../../storage/codec.ts";
import type { EventLog } from "../../storage/log.ts";
import { DRY_RUN_ABORTED, dryRun } from "./dry-run.ts";
import type { SandboxFactory } from "./sandbox.ts";
import { loadRule, RULE_NAME, RuleLoadError, ruleNameOf } from "./rule-file.ts";
import { RulesWorker, workerSandbox, type RulesWorkerOptions } from "./rules-worker.ts";
import { RuleMetrics, RuleRunner, ruleCursor, ruleSource, type FaultLimit, type RuleLogger } from "./rule-runner.ts";

export interface RulesOptions {
  log: EventLog;
  catalog: Catalog;
  logger: RuleLogger;
  configDir: string;
  registry?: Registry;
  faultLimit?: FaultLimit;
  /** wait after a file event before reloading (editors write in steps); default 200 ms */
  settleMs?: number;
  retry?: { initialMs: number; maxMs: number };
  /** the rules worker's deadlines (tests shorten them) */
  worker?: RulesWorkerOptions;
}

interface RuleEntry {
  name: string;
  file: string;
  runner: RuleRunner | null;
  /** an operator's or the fault limit's decision, from the log */
  disabled: string | null;
  /** the file on disk does not load (the previous version may still run) */
  invalid: string | null;
  lastErrorAt: string | null;
}

export class RulesError extends Error {
  override name = "RulesError";
  constructor(
    readonly code: "unknown_rule" | "invalid_rule" | "invalid_name",
    message: string,
    readonly line: number | null = null,
  ) {
    super(message);
  }
}

/** Last `rule.state` and last enable/disable decision of every rule, from the log. */
async function readDecisions(log: EventLog): Promise<{ states: Map<string, string>; disabled: Map<string, string | null> }> {
  const conn = await log.connect();
  try {
    const rows = (
      await conn.runAndReadAll(
        `SELECT source, json_extract_string(body, '$.type') AS type, body FROM log
         WHERE kind = ${KIND_CODE.event} AND source LIKE 'rule:%'
           AND json_extract_string(body, '$.type') IN ('rule.state', 'rule.enabled', 'rule.disabled')
         QUALIFY row_number() OVER (PARTITION BY source, json_extract_string(body, '$.type') = 'rule.state' ORDER BY "offset" DESC) = 1`,
      )
    ).getRows() as [string, string, string][];
    const states = new Map<string, string>();
    const disabled = new Map<string, string | null>();
    for (const [source, type, body] of rows) {
      const name = source.slice("rule:".length);
      const data = (JSON.parse(body) as { data?: { state?: unknown; reason?: string } }).data ?? {};
      if (type === "rule.state") states.set(name, JSON.stringify(data.state ?? {}));
      else disabled.set(name, type === "rule.disabled" ? (data.reason ?? "disabled") : null);
    }
    return { states, disabled };
  } finally {
    conn.closeSync();
  }
}

export class RulesService {
  readonly name = "rules";
  readonly dir: string;
  private readonly entries = new Map<string, RuleEntry>();
  private readonly metrics: RuleMetrics | undefined;
  private watcher: FSWatcher | null = null;
  private timers = new Map<string, ReturnType<typeof setTimeout>>();
  private chain: Promise<unknown> = Promise.resolve();
  private states = new Map<string, string>();
  private stopped = false;
  /** dry runs in progress (status and metric: a run whose client left must end) */
  private dryRunsRunning = 0;

  /** the one thread where every live rule runs (rules-worker.ts says why one) */
  readonly worker: RulesWorker;
  private readonly make: SandboxFactory;

  constructor(private readonly opts: RulesOptions) {
    this.dir = join(opts.configDir, "rules");
    this.worker = new RulesWorker(opts.worker);
    this.make = workerSandbox(this.worker);
    this.metrics = opts.registry ? new RuleMetrics(opts.registry) : undefined;
  }

  async start(): Promise<void> {
    const { states, disabled } = await readDecisions(this.opts.log);
    this.states = states;
    for (const [name, reason] of disabled) if (reason !== null) this.entry(name).disabled = reason;
    if (existsSync(this.dir)) {
      for (const f of readdirSync(this.dir).filter((f) => f.endsWith(".js")).sort()) await this.reload(ruleNameOf(f));
      this.watch();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    for (const t of this.timers.values()) clearTimeout(t);
    await this.chain;
    for (const e of this.entries.values()) await e.runner?.stop();
    this.worker.stop();
  }

  private watch(): void {
    this.watcher = watch(this.dir, (_event, file) => {
      const f = String(file ?? "");
      if (!f.endsWith(".js") || !RULE_NAME.test(ruleNameOf(f))) return;
      const name = ruleNameOf(f);
      clearTimeout(this.timers.get(name));
      this.timers.set(
        name,
        setTimeout(() => {
          this.timers.delete(name);
          void this.serial(() => this.reload(name));
        }, this.opts.settleMs ?? 200),
      );
    });
    this.watcher.on("error", (err) => this.opts.logger.error({ err }, "rules folder watch failed"));
  }

  /** One change at a time (file events, API edits, enable/disable). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch((err) => this.opts.logger.error({ err }, "rules: a change failed"));
    return run;
  }

  private entry(name: string): RuleEntry {
    let e = this.entries.get(name);
    if (!e) this.entries.set(name, (e = { name, file: `rules/${name}.js`, runner: null, disabled: null, invalid: null, lastErrorAt: null }));
    return e;
  }

  /** Loads the file of `name` again: starts, replaces, or (file gone) stops its runner. Never throws. */
  private async reload(name: string): Promise<void> {
    if (this.stopped) return;
    const e = this.entry(name);
    const path = join(this.dir, `${name}.js`);
    if (!existsSync(path)) {
      await e.runner?.stop();
      this.entries.delete(name);
      return;
    }
    const source = readFileSync(path, "utf8");
    if (e.runner && e.runner.spec.source === source && !e.invalid) return;
    try {
      const { spec, sandbox } = await loadRule(e.file, source, this.opts.catalog, this.states.get(name) ?? "{}", this.make);
      if (e.runner) {
        // the new version goes on from the state the old one reached: read once it has stopped
        await e.runner.stop();
        await sandbox.load(e.runner.stateJson);
      }
      e.invalid = null;
      e.runner = new RuleRunner(this.runnerDeps(), spec, sandbox);
      if (!e.disabled) await this.startRunner(e);
      this.opts.logger.info({ rule: name }, `rule ${name} loaded`);
    } catch (err) {
      if (!(err instanceof RuleLoadError)) throw err;
      e.invalid = err.message;
      e.lastErrorAt = new Date().toISOString();
      this.opts.logger.error({ rule: name, file: err.file, line: err.line }, `rule file refused: ${err.message}${e.runner ? " (the previous version keeps running)" : ""}`);
      await this.opts.log.append([{ kind: "event", type: "rule.rejected", source: ruleSource(name), ts: Date.now() * 1000, data: { file: err.file, line: err.line, error: err.message } }]);
    }
  }

  private runnerDeps() {
    return { log: this.opts.log, catalog: this.opts.catalog, logger: this.opts.logger, ...(this.metrics ? { metrics: this.metrics } : {}), ...(this.opts.faultLimit ? { faultLimit: this.opts.faultLimit } : {}), ...(this.opts.retry ? { retry: this.opts.retry } : {}) };
  }

  /** A rule seen for the first time starts at the head of the log (the dry run is the way to try history). */
  private async startRunner(e: RuleEntry): Promise<void> {
    const r = e.runner!;
    const { log } = this.opts;
    if (log.cursor(ruleCursor(e.name)) === 0) await log.commitCursor(ruleCursor(e.name), log.head);
    r.onDisabled = (reason) => {
      e.disabled = reason;
      void this.serial(() => r.stop());
    };
    r.start();
  }

  status(): ComponentStatus {
    const views = this.list();
    const bad = views.filter((v) => v.state === "invalid" || (v.state === "disabled" && v.disabledReason?.includes("faults")));
    return {
      state: bad.length ? "degraded" : "ok",
      reasons: bad.map((v) => `rule ${v.name}: ${v.state === "invalid" ? v.lastError : `disabled (${v.disabledReason})`}`),
      rules: views.length,
      running: views.filter((v) => v.state === "running").length,
      dryRuns: this.dryRunsRunning,
      // the rule running in the worker now and for how long; restarts after a worker died or hung
      worker: { busy: this.worker.busy(), restarts: this.worker.restarts },
    };
  }

  list(): RuleView[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name)).map((e) => this.view(e));
  }

  get(name: string): (RuleView & { source: string | null }) | null {
    const e = this.entries.get(name);
    if (!e) return null;
    const path = join(this.dir, `${name}.js`);
    return { ...this.view(e), source: existsSync(path) ? readFileSync(path, "utf8") : null };
  }

  private view(e: RuleEntry): RuleView {
    const r = e.runner;
    // an invalid edit of a running rule leaves the previous version running: "running", with the refusal as lastError
    const state = e.disabled ? "disabled" : r ? "running" : e.invalid ? "invalid" : "stopped";
    return {
      name: e.name,
      file: e.file,
      state,
      disabledReason: e.disabled,
      meta: r?.spec.meta ?? null,
      runs: r?.runs ?? 0,
      faults: r?.faults ?? 0,
      refused: r?.refusedCount ?? 0,
      usPerRun: Math.round((r?.usPerRun() ?? 0) * 100) / 100,
      lastError: e.invalid ?? r?.lastError ?? null,
      lastErrorAt: e.invalid ? e.lastErrorAt : (r?.lastErrorAt ?? null),
      lagFrames: r && !e.disabled ? r.lagFrames() : 0,
    };
  }

  /** Checks `source` as rule `name` would load (syntax, meta, tags); throws RulesError with the line. */
  async check(name: string, source: string): Promise<void> {
    if (!RULE_NAME.test(name)) throw new RulesError("invalid_name", `rule name '${name}' must be letters, digits, _ and - (at most 64)`);
    try {
      (await loadRule(`rules/${name}.js`, source, this.opts.catalog, "{}", this.make)).sandbox.close();
    } catch (err) {
      if (err instanceof RuleLoadError) throw new RulesError("invalid_rule", err.message, err.line);
      throw err;
    }
  }

  /** Checks, writes rules/<name>.js (atomically) and loads it now. */
  async put(name: string, source: string): Promise<RuleView> {
    await this.check(name, source);
    return this.serial(async () => {
      mkdirSync(this.dir, { recursive: true });
      const path = join(this.dir, `${name}.js`);
      writeFileSync(`${path}.tmp`, source);
      renameSync(`${path}.tmp`, path);
      await this.reload(name);
      if (!this.watcher) this.watch();
      return this.view(this.entry(name));
    });
  }

  /**
   * What rule `name` (its saved text, or `source`) would have done over the history of [from, to]
   * (default the last hour); nothing is appended or written.
   */
  async dryRun(name: string, opts: { source?: string; fromMs?: number; toMs?: number; signal?: AbortSignal } = {}): Promise<DryRunResult> {
    if (!RULE_NAME.test(name)) throw new RulesError("invalid_name", `rule name '${name}' must be letters, digits, _ and - (at most 64)`);
    const e = this.entries.get(name);
    const path = join(this.dir, `${name}.js`);
    const source = opts.source ?? (existsSync(path) ? readFileSync(path, "utf8") : null);
    if (source === null) throw new RulesError("unknown_rule", `no rule '${name}' (give its text as source to try a new one)`);
    const toMs = opts.toMs ?? Date.now();
    const fromMs = opts.fromMs ?? toMs - 3_600_000;
    this.dryRunsRunning++;
    this.metrics?.dryRunsRunning.inc();
    let outcome = "failed";
    // a worker of its own: a replay of history never delays the live rules, and stopping it ends the run at once
    const worker = new RulesWorker(this.opts.worker);
    const stop = () => worker.stop();
    opts.signal?.addEventListener("abort", stop, { once: true });
    try {
      const stateJson = e?.runner?.stateJson ?? this.states.get(name) ?? "{}";
      const result = await dryRun(this.opts.log, this.opts.catalog, name, source, { fromMicros: fromMs * 1000, toMicros: toMs * 1000 }, { stateJson, make: workerSandbox(worker), ...(opts.signal ? { signal: opts.signal } : {}) });
      outcome = result.stopped === DRY_RUN_ABORTED ? "aborted" : result.stopped ? "stopped" : "done";
      return result;
    } catch (err) {
      if (err instanceof RuleLoadError) throw new RulesError("invalid_rule", err.message, err.line);
      throw err;
    } finally {
      opts.signal?.removeEventListener("abort", stop);
      worker.stop();
      this.dryRunsRunning--;
      this.metrics?.dryRunsRunning.dec();
      this.metrics?.dryRuns.inc({ outcome });
    }
  }

  /**
   * Enables or disables a rule (recorded in the log). An enabled rule starts at the head of the log: what
   * happened while it was off is not replayed (commands from old triggers would be stale anyway).
   */
  async setEnabled(name: string, enabled: boolean, actor: string): Promise<RuleView> {
    return this.serial(async () => {
      const e = this.entries.get(name);
      if (!e) throw new RulesError("unknown_rule", `no rule '${name}'`);
      const ev = { kind: "event" as const, type: enabled ? "rule.enabled" : "rule.disabled", source: ruleSource(name), ts: Date.now() * 1000, data: enabled ? { actor } : { reason: `disabled by ${actor}`, actor } };
      if (enabled && e.disabled !== null) {
        await this.opts.log.append([ev], { cursor: { name: ruleCursor(name), offset: this.opts.log.head } });
        e.disabled = null;
        if (e.runner) {
          // a runner stopped after faults is not restarted: a fresh one from the same spec
          const { spec } = e.runner;
          await e.runner.stop();
          const { sandbox } = await loadRule(e.file, spec.source, this.opts.catalog, e.runner.stateJson, this.make);
          e.runner = new RuleRunner(this.runnerDeps(), spec, sandbox);
          await this.startRunner(e);
        }
      } else if (!enabled && e.disabled === null) {
        await e.runner?.stop();
        await this.opts.log.append([ev]);
        e.disabled = `disabled by ${actor}`;
      }
      return this.view(e);
    });
  }
}

export function createRulesService(opts: RulesOptions): RulesService {
  return new RulesService(opts);
}
