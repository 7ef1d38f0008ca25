// The gateway's side of the rules worker (sandbox-worker.ts runs in its thread). Rules are evaluated in
// a Worker so that a run (up to its time limit per message, a page at a time) never holds the gateway's
// event loop: ingest, the API and every consumer go on meanwhile. The log consumers stay on the
// gateway's thread: they ship a page's trigger frames to the worker and commit what comes back.
//
// One worker for all rules: a rule's run is serial anyway (its outputs commit in order with its cursor),
// rules are meant to take microseconds a message, and one thread keeps today's cost (one JavaScript heap,
// one compiled QuickJS module) on a 2-core machine; a dry run gets a worker of its own (scripts.ts), so
// history replays never delay live rules. Calls go one at a time, so a worker that dies or stays silent
// past its deadline is blamed on the one rule whose call was in flight: the call fails with WorkerFault,
// the worker is terminated and a new one starts on the next call, and every sandbox is loaded again from
// the state the host last read back (nothing the worker held is needed to go on).
import { TagTable } from "./batch.ts";
import { RuleLoadError, type BatchResult, type Grants, type RuleExports, type RuleMessage, type RuleSandbox, type RunOptions, type SandboxFactory, type SandboxLimits } from "./sandbox.ts";

export type WorkerRequest =
  | { op: "load"; call: number; id: number; file: string; source: string; limits: SandboxLimits; grants: Grants; state: string }
  | { op: "run"; call: number; id: number; file: string; batch: unknown; maxLimitFaults?: number }
  | { op: "timer"; call: number; id: number; file: string; nowMs: number }
  | { op: "close"; call: number; id: number; file: string };

type RequestBody = WorkerRequest extends infer R ? (R extends { call: number } ? Omit<R, "call"> : never) : never;

export interface WorkerReply {
  call: number;
  value?: unknown;
  error?: { name: string; message: string; file?: string; line?: number | null; column?: number | null; reason?: string };
}

/** The rules worker failed a call: it died, stayed silent past the deadline, or was stopped. */
export class WorkerFault extends Error {
  override name = "WorkerFault";
  constructor(
    readonly reason: "died" | "hung" | "stopped",
    message: string,
  ) {
    super(message);
  }
}

export interface RulesWorkerOptions {
  /** silence allowed beyond a call's time limit before the worker counts as hung, ms (default 2000) */
  graceMs?: number;
  /** the silence allowed, whatever the time limit (tests: a hang shorter than a rule's own limit); a call that starts the thread gets 10 s more */
  silenceMs?: number;
}

const SPAWN_GRACE_MS = 10_000;
/** Indexes of the Int32Array shared with the thread (sandbox-worker.ts): the stop flag, the slice count */
export const STOP = 0;
export const BEAT = 1;

interface InFlight {
  call: number;
  /** the rule file whose call it is, and since when (status) */
  file: string;
  startedAt: number;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout> | null;
  silenceMs: number;
  /** the thread's beat count when the deadline was armed */
  beat: number;
}

/** One Worker thread running sandboxes; restarted after a fault. */
export class RulesWorker {
  private worker: Worker | null = null;
  /** bumped at every (re)start: a sandbox loaded in an older generation must be loaded again */
  generation = 0;
  restarts = 0;
  private calls = 0;
  private sandboxes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private inFlight: InFlight | null = null;
  private stopped = false;
  private shared: Int32Array<ArrayBufferLike> = new Int32Array(2);

  constructor(private readonly opts: RulesWorkerOptions = {}) {}

  /** The thread (for fault injection in tests: terminating it is a worker that died). */
  get thread(): Worker | null {
    return this.worker;
  }

  newSandboxId(): number {
    return ++this.sandboxes;
  }

  /** What the thread is running now: which rule's call and for how long (null when idle). */
  busy(): { file: string; ms: number } | null {
    const f = this.inFlight;
    return f ? { file: f.file, ms: Math.round(performance.now() - f.startedAt) } : null;
  }

  /** Runs `req` in the worker after the calls before it; fails with WorkerFault when the worker fails it. */
  call<T>(req: RequestBody, timeLimitMs: number, transfer: Transferable[] = []): Promise<T> {
    const run = this.queue.then(() => this.send<T>(req, timeLimitMs, transfer));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private send<T>(req: RequestBody, timeLimitMs: number, transfer: Transferable[]): Promise<T> {
    if (this.stopped) return Promise.reject(new WorkerFault("stopped", "the rules worker is stopped"));
    const spawning = !this.thread;
    const w = this.thread ?? this.spawn();
    const call = ++this.calls;
    return new Promise<T>((resolve, reject) => {
      // a new thread first starts and compiles QuickJS (~0.1 s measured, seconds on a loaded machine)
      const silenceMs = (this.opts.silenceMs ?? timeLimitMs + (this.opts.graceMs ?? 2000)) + (spawning ? SPAWN_GRACE_MS : 0);
      this.inFlight = { call, file: req.file, startedAt: performance.now(), resolve: resolve as (v: unknown) => void, reject, timer: null, silenceMs, beat: 0 };
      this.arm();
      w.postMessage({ ...req, call }, transfer);
    });
  }

  /**
   * (Re)arms the deadline of the call in flight: its time limit plus the grace without a beat. The beat
   * count is read from shared memory when the timer fires: a thread that went on counting is not hung,
   * however late this thread got to look.
   */
  private arm(): void {
    const f = this.inFlight;
    if (!f) return;
    f.beat = Atomics.load(this.shared, BEAT);
    f.timer = setTimeout(() => {
      if (this.inFlight !== f) return;
      if (Atomics.load(this.shared, BEAT) !== f.beat) return this.arm();
      this.fault("hung", `the rules worker gave no sign of life for ${f.silenceMs} ms: restarted`);
    }, f.silenceMs);
  }

  private spawn(): Worker {
    const w = new Worker(new URL("./sandbox-worker.ts", import.meta.url).href);
    this.shared = new Int32Array(new SharedArrayBuffer(8));
    w.postMessage({ op: "init", shared: this.shared.buffer });
    // the thread alone must not keep the process alive (a call in flight does: its deadline timer)
    (w as Worker & { unref?: () => void }).unref?.();
    this.worker = w;
    this.generation++;
    w.onmessage = (ev: MessageEvent<WorkerReply>) => this.reply(w, ev.data);
    w.onerror = (ev) => this.thread === w && this.fault("died", `the rules worker failed: ${(ev as ErrorEvent).message ?? "error"}: restarted`);
    w.addEventListener("close", () => this.thread === w && this.fault("died", "the rules worker ended: restarted"));
    return w;
  }

  private reply(w: Worker, r: WorkerReply): void {
    const f = this.inFlight;
    if (w !== this.worker || !f || r.call !== f.call) return;
    if (f.timer) clearTimeout(f.timer);
    this.inFlight = null;
    if (!r.error) return f.resolve(r.value);
    const e = r.error;
    f.reject(e.name === "RuleLoadError" ? new RuleLoadError(e.file ?? "", e.line ?? null, e.column ?? null, e.reason ?? e.message) : Object.assign(new Error(e.message), { name: e.name }));
  }

  /** Ends the thread and fails the call in flight; the next call starts a new thread. */
  private fault(reason: WorkerFault["reason"], message: string): void {
    const w = this.worker;
    this.worker = null;
    if (w) {
      this.restarts += reason === "stopped" ? 0 : 1;
      Atomics.store(this.shared, STOP, 1); // see sandbox-worker.ts: what makes terminate() stop a run
      w.terminate();
    }
    const f = this.inFlight;
    this.inFlight = null;
    if (f) {
      if (f.timer) clearTimeout(f.timer);
      f.reject(new WorkerFault(reason, message));
    }
  }

  /** Stops the thread; calls in flight or queued fail with WorkerFault("stopped"). */
  stop(): void {
    this.stopped = true;
    this.fault("stopped", "the rules worker was stopped");
  }
}

/**
 * A rule's sandbox living in a RulesWorker, with the interface of Sandbox: the rule runner and the dry
 * run do not know which one they hold. It keeps what a new worker needs to load it again (source,
 * limits, grants, the state last read back) and loads it there on the first call after a restart.
 */
export class RemoteSandbox implements RuleSandbox {
  private readonly id: number;
  private table = new TagTable();
  private loadedIn = -1;
  private lastState = "{}";
  exports: RuleExports = { meta: undefined, onMessage: false, onTimer: false };

  constructor(
    private readonly worker: RulesWorker,
    readonly file: string,
    private readonly source: string,
    readonly limits: SandboxLimits,
    private readonly grants: Grants = { writes: [], sets: [] },
  ) {
    this.id = worker.newSandboxId();
  }

  get state(): string {
    return this.lastState;
  }

  async load(stateJson = "{}"): Promise<RuleExports> {
    this.lastState = stateJson;
    // a new sandbox in the worker has an empty tag table: ids start again
    this.table = new TagTable();
    this.loadedIn = -1;
    this.exports = await this.worker.call<RuleExports>({ op: "load", id: this.id, file: this.file, source: this.source, limits: this.limits, grants: { writes: [...this.grants.writes], sets: [...this.grants.sets] }, state: stateJson }, this.limits.timeLimitMs);
    // the thread that answered (a fault would have failed the call) is the current generation
    this.loadedIn = this.worker.generation;
    return this.exports;
  }

  private async ready(): Promise<void> {
    if (this.loadedIn !== this.worker.generation || !this.worker.thread) await this.load(this.lastState);
  }

  async runBatch(msgs: readonly RuleMessage[], opts: RunOptions = {}): Promise<BatchResult> {
    await this.ready();
    const batch = this.table.encode(msgs);
    // the batch may take the time limit per message; the deadline is on silence, not on the whole batch
    const result = await this.worker.call<BatchResult>({ op: "run", id: this.id, file: this.file, batch, ...(opts.maxLimitFaults !== undefined ? { maxLimitFaults: opts.maxLimitFaults } : {}) }, this.limits.timeLimitMs, [batch.cols.buffer]);
    this.lastState = result.state;
    return result;
  }

  async runTimer(nowMs: number): Promise<BatchResult> {
    await this.ready();
    const result = await this.worker.call<BatchResult>({ op: "timer", id: this.id, file: this.file, nowMs }, this.limits.timeLimitMs);
    this.lastState = result.state;
    return result;
  }

  /** Frees the sandbox in the worker (not awaited: a stopped worker has nothing to free). */
  close(): boolean {
    if (this.worker.thread && this.loadedIn === this.worker.generation) this.worker.call({ op: "close", id: this.id, file: this.file }, this.limits.timeLimitMs).catch(() => undefined);
    this.loadedIn = -1;
    return true;
  }
}

/** Sandboxes in `worker` (loadRule's factory). */
export const workerSandbox =
  (worker: RulesWorker): SandboxFactory =>
  (file, source, limits, grants) =>
    new RemoteSandbox(worker, file, source, limits, grants);
