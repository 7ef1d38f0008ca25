// The QuickJS sandbox of one user rule: its own WebAssembly module instance, runtime and context, so a
// fault (a time limit, the memory ceiling, a leaked handle aborting dispose) ends that rule only. Inside
// there is only the ECMAScript language and the host API of the prelude (host-api.ts): no process,
// require, Bun, fetch, timers or file access (quickjs-emscripten's context has none of them).
// Values cross as JSON text or number columns (bigint as a decimal string): no object of one realm is seen by the other.
// Outputs of a run are collected in the sandbox with the index of the message that produced them, and
// read back by the host after the run: the host validates every output (rule-outputs.ts); the in-sandbox
// checks only give the author an early error.
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime, QuickJSWASMModule } from "quickjs-emscripten-core";
import { PRELUDE, toOutput, type SandboxOutput } from "./host-api.ts";
import { COLUMNS, TagTable, type EncodedBatch } from "./batch.ts";
import { boundedModule, PAGE } from "./quickjs.ts";

export { LOG_LINE_BYTES, type SandboxOutput } from "./host-api.ts";

export interface SandboxLimits {
  /** wall time of one message (or one timer run), ms (default 50) */
  timeLimitMs: number;
  /** QuickJS heap ceiling, bytes (default 16 MiB) */
  memoryBytes: number;
  /** QuickJS stack, bytes (default 256 KiB) */
  stackBytes: number;
  /** outputs one run may produce (default 10000) */
  maxOutputs: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { timeLimitMs: 50, memoryBytes: 16 << 20, stackBytes: 256 << 10, maxOutputs: 10_000 };

/** What a rule's onMessage receives as `msg`. */
export interface RuleMessage {
  tag: string;
  value: unknown;
  /** OPC UA StatusCode (0 = Good) */
  quality: number;
  /** source timestamp, µs since the epoch */
  ts: number;
}

export interface RunOptions {
  /** stop the batch after this many limit faults (default: never) */
  maxLimitFaults?: number;
  /** called after every slice (about a tenth of the time limit): the rules worker's sign of life */
  onSlice?: () => void;
}

/** `worker`: the rules worker died or gave no sign of life past its deadline during the rule's call (rules-worker.ts) */
export type FaultKind = "timeout" | "memory" | "stack" | "error" | "worker";

/** A run that did not complete: what happened and at which message. */
export interface RunFault {
  kind: FaultKind;
  message: string;
  /** index of the message in the batch, -1 for a timer run */
  at: number;
  /** the sandbox is unusable and was rebuilt (limits) */
  rebuilt?: boolean;
}

export interface BatchResult {
  outputs: SandboxOutput[];
  faults: RunFault[];
  /** JSON of the rule's `state` after the run */
  state: string;
  /** runBatch: the messages handled (all of them unless it stopped at `maxLimitFaults`) */
  ran?: number;
}

/** A rule file that cannot load: a syntax error (with line and column) or an error while its module runs. */
export class RuleLoadError extends Error {
  override name = "RuleLoadError";
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly column: number | null,
    readonly reason: string,
  ) {
    super(`${file}${line !== null ? `:${line}${column !== null ? `:${column}` : ""}` : ""}: ${reason}`);
  }
}

const isLimit = (k: FaultKind) => k === "timeout" || k === "memory" || k === "stack";

/** Names the fault of an error dumped from QuickJS. */
function classify(e: unknown, interrupted: "timeout" | "memory" | null): { kind: FaultKind; message: string } {
  const err = (e ?? {}) as { name?: string; message?: string };
  const message = `${err.name ?? "Error"}: ${err.message ?? String(e)}`;
  if (interrupted === "memory") return { kind: "memory", message: "InternalError: out of memory (memory ceiling)" };
  if (interrupted === "timeout" || err.message === "interrupted") return { kind: "timeout", message };
  if (err.message === "out of memory") return { kind: "memory", message };
  if (/stack overflow/i.test(err.message ?? "")) return { kind: "stack", message };
  return { kind: "error", message };
}

interface Loaded {
  module: QuickJSWASMModule;
  runtime: QuickJSRuntime;
  vm: QuickJSContext;
  host: QuickJSHandle;
  fns: Record<"init" | "bind" | "load" | "run" | "timer" | "at" | "take", QuickJSHandle>;
}

export interface RuleExports {
  meta: unknown;
  onMessage: boolean;
  onTimer: boolean;
}

/** What a rule runner or a dry run holds: a Sandbox in this thread or a RemoteSandbox in the rules worker. */
export interface RuleSandbox {
  readonly file: string;
  readonly limits: SandboxLimits;
  exports: RuleExports;
  /** the rule's state as last read back (JSON) */
  readonly state: string;
  load(stateJson?: string): Promise<RuleExports>;
  runBatch(msgs: readonly RuleMessage[], opts?: RunOptions): Promise<BatchResult>;
  runTimer(nowMs: number): Promise<BatchResult>;
  close(): boolean;
}

export type Grants = { writes: readonly string[]; sets: readonly string[] };

/** Makes the sandbox of a rule file (in this thread, or in the rules worker). */
export type SandboxFactory = (file: string, source: string, limits: SandboxLimits, grants?: Grants) => RuleSandbox;

export const localSandbox: SandboxFactory = (file, source, limits, grants) => new Sandbox(file, source, limits, grants);

/**
 * One rule's sandbox. `load()` evaluates the file (syntax errors -> RuleLoadError with line), then
 * `runBatch(msgs)` calls onMessage per message with a deadline per message, and `runTimer(now)` calls
 * onTimer. A limit fault (time, memory, stack) disposes the runtime and builds a fresh one from the same
 * source and the last good state; an exception thrown by the rule only skips its message.
 */
export class Sandbox implements RuleSandbox {
  private loaded: Loaded | null = null;
  private deadline = Infinity;
  /** why the interrupt handler stopped the last call, if it did */
  private interrupted: "timeout" | null = null;
  private isMemoryFull = () => false;
  private lastState = "{}";
  /** tag names by id as the batches gave them (ids are per sandbox; a rebuilt one is sent all names again) */
  private readonly tagNames: string[] = [];
  /** ids of runBatch's messages (runEncoded's caller keeps its own) */
  private readonly table = new TagTable();
  private namesSent = 0;
  /** disposals that aborted (a leaked handle): the module was dropped instead */
  disposeFailures = 0;
  exports: RuleExports = { meta: undefined, onMessage: false, onTimer: false };

  constructor(
    readonly file: string,
    private readonly source: string,
    readonly limits: SandboxLimits = DEFAULT_LIMITS,
    private readonly grants: Grants = { writes: [], sets: [] },
    /** asked at every interrupt check: true stops the run (the rules worker's thread is being terminated) */
    private readonly stopRequested: () => boolean = () => false,
  ) {}

  /** Evaluates the rule with this state (JSON); throws RuleLoadError. */
  async load(stateJson = "{}"): Promise<RuleExports> {
    this.close();
    this.lastState = stateJson;
    const { module, memory, maxBytes } = await boundedModule(this.limits.memoryBytes);
    // near the ceiling QuickJS may fail to allocate even the exception (null is thrown): a full memory says why
    this.isMemoryFull = () => memory.buffer.byteLength >= maxBytes - PAGE;
    const runtime = module.newRuntime();
    runtime.setMemoryLimit(this.limits.memoryBytes);
    runtime.setMaxStackSize(this.limits.stackBytes);
    runtime.setInterruptHandler(() => {
      if (performance.now() <= this.deadline && !this.stopRequested()) return false;
      this.interrupted = "timeout";
      return true;
    });
    const vm = runtime.newContext();
    this.namesSent = 0;
    const partial = { module, runtime, vm } as Loaded;
    try {
      this.evalVoid(vm, PRELUDE.replace("__MAX_OUTPUTS__", String(this.limits.maxOutputs)), "<prelude>");
      const host = vm.getProp(vm.global, "__host");
      partial.host = host;
      const fns = {} as Loaded["fns"];
      for (const k of ["init", "bind", "load", "run", "timer", "at", "take"] as const) fns[k] = vm.getProp(host, k);
      partial.fns = fns;
      this.loaded = partial;
      this.callString("init", [stateJson, JSON.stringify(this.grants.writes), JSON.stringify(this.grants.sets)]);
      const ns = this.evalModule(vm);
      try {
        this.exports = JSON.parse(this.callString("bind", [], ns)) as RuleExports;
      } finally {
        ns.dispose();
      }
      return this.exports;
    } catch (e) {
      this.loaded = partial;
      this.close();
      throw e;
    }
  }

  /** The rule's module namespace; a syntax error or a throw at its top level is a RuleLoadError. */
  private evalModule(vm: QuickJSContext): QuickJSHandle {
    this.deadline = performance.now() + this.limits.timeLimitMs;
    this.interrupted = null;
    const r = vm.evalCode(this.source, this.file, { type: "module" });
    this.deadline = Infinity;
    if (r.error) {
      const e = vm.dump(r.error) as { name?: string; message?: string; lineNumber?: number; stack?: string };
      r.error.dispose();
      const pos = /:(\d+):(\d+)/.exec(e?.stack ?? "");
      const line = e?.lineNumber ?? (pos ? Number(pos[1]) : null);
      const column = pos ? Number(pos[2]) : null;
      throw new RuleLoadError(this.file, line, column, `${e?.name ?? "Error"}: ${e?.message ?? String(e)}`);
    }
    return r.value;
  }

  private evalVoid(vm: QuickJSContext, code: string, file: string): void {
    const r = vm.evalCode(code, file);
    if (r.error) {
      const e = vm.dump(r.error);
      r.error.dispose();
      throw new Error(`sandbox prelude failed: ${JSON.stringify(e)}`);
    }
    r.value.dispose();
  }

  /** Calls __host[name] with string/number args (and an optional handle); returns its result as a string. */
  private callString(name: keyof Loaded["fns"], args: (string | number)[], extra?: QuickJSHandle, numeric = false): string {
    const { vm, fns, host } = this.loaded!;
    const handles = args.map((a) => (typeof a === "string" ? vm.newString(a) : vm.newNumber(a)));
    try {
      const r = vm.callFunction(fns[name], host, ...handles, ...(extra ? [extra] : []));
      if (r.error) {
        const e = vm.dump(r.error);
        r.error.dispose();
        throw new SandboxCallError(e);
      }
      const type = vm.typeof(r.value);
      const v = type === "string" ? vm.getString(r.value) : numeric && type === "number" ? String(vm.getNumber(r.value)) : "";
      r.value.dispose();
      return v;
    } finally {
      for (const h of handles) h.dispose();
    }
  }

  /** One call with a deadline: the number it returned, or the fault it threw. */
  private guarded(name: "run" | "timer", arg: number): { fault: { kind: FaultKind; message: string } } | { next: number } {
    this.interrupted = null;
    this.deadline = performance.now() + this.limits.timeLimitMs;
    try {
      const extra = name === "run" ? [Math.max(1, this.limits.timeLimitMs / 10)] : [];
      return { next: Number(this.callString(name, [arg, ...extra], undefined, true)) };
    } catch (e) {
      if (!(e instanceof SandboxCallError)) throw e;
      return { fault: classify(e.dumped, this.interrupted ?? (this.isMemoryFull() ? "memory" : null)) };
    } finally {
      this.deadline = Infinity;
    }
  }

  /**
   * Runs onMessage on each message, with a deadline per message (the in-sandbox loop ticks the host
   * before each one). A message that throws or exceeds a limit is skipped and reported as a fault; the
   * other messages run (after a limit fault, in a rebuilt sandbox with the state read back last).
   * With `maxLimitFaults` the batch stops after that many limit faults (each costs up to the time limit
   * and a rebuild); `ran` says how many messages were handled.
   */
  runBatch(msgs: readonly RuleMessage[], opts: RunOptions = {}): Promise<BatchResult> {
    return this.runEncoded(this.table.encode(msgs), opts);
  }

  /** runBatch of a batch encoded by the caller's TagTable (the rules worker gets them so). */
  async runEncoded(batch: EncodedBatch, opts: RunOptions = {}): Promise<BatchResult> {
    const { maxLimitFaults = Infinity, onSlice } = opts;
    if (!this.loaded) await this.load(this.lastState);
    const outputs: SandboxOutput[] = [];
    const faults: RunFault[] = [];
    const count = batch.cols.length / COLUMNS;
    for (const name of batch.names) this.tagNames.push(name);
    this.loadBatch(batch);
    let from = 0;
    let limitFaults = 0;
    while (from < count) {
      const r = this.guarded("run", from);
      onSlice?.();
      if ("next" in r) {
        from = r.next;
        continue;
      }
      const fault = r.fault;
      const at = Math.min(count - 1, Math.max(from, this.currentIndex() ?? from));
      const f: RunFault = { ...fault, at };
      faults.push(f);
      // the outputs of the messages before it are kept (when an exhausted heap still lets them be read);
      // the faulting message's own outputs are dropped: a message's outputs apply whole or not at all
      this.collect(outputs, at);
      if (isLimit(fault.kind)) {
        f.rebuilt = true;
        await this.rebuild();
        this.loadBatch(batch);
        if (++limitFaults >= maxLimitFaults) {
          from = at + 1;
          break;
        }
      }
      from = at + 1;
    }
    const state = this.collect(outputs, Infinity);
    return { outputs, faults, state, ran: Math.min(from, count) };
  }

  private loadBatch(b: EncodedBatch): void {
    const { vm, fns, host } = this.loaded!;
    const names = this.namesSent < this.tagNames.length ? JSON.stringify(this.tagNames.slice(this.namesSent)) : "";
    this.namesSent = this.tagNames.length;
    const buf = vm.newArrayBuffer(b.cols.buffer);
    const ex = vm.newString(b.extras);
    const nm = vm.newString(names);
    try {
      const r = vm.callFunction(fns.load, host, buf, ex, nm);
      if (r.error) {
        const e = vm.dump(r.error);
        r.error.dispose();
        throw new SandboxCallError(e);
      }
      r.value.dispose();
    } finally {
      buf.dispose();
      ex.dispose();
      nm.dispose();
    }
  }

  /** Runs onTimer(nowMs) once under the time limit. */
  async runTimer(nowMs: number): Promise<BatchResult> {
    if (!this.loaded) await this.load(this.lastState);
    const outputs: SandboxOutput[] = [];
    const r = this.guarded("timer", nowMs);
    const fault = "fault" in r ? r.fault : null;
    if (fault && isLimit(fault.kind)) {
      await this.rebuild();
      return { outputs, faults: [{ ...fault, at: -1, rebuilt: true }], state: this.lastState };
    }
    const state = this.collect(outputs, Infinity);
    // a timer run that threw leaves no outputs (it is one run, not a batch of messages)
    if (fault) return { outputs: [], faults: [{ ...fault, at: -1 }], state };
    return { outputs, faults: [], state };
  }

  /** The index of the message the last run was in (null when it cannot be read). */
  private currentIndex(): number | null {
    const { vm, fns, host } = this.loaded!;
    const r = vm.callFunction(fns.at, host);
    if (r.error) {
      r.error.dispose();
      return null;
    }
    const n = vm.getNumber(r.value);
    r.value.dispose();
    return n;
  }

  /** Moves the sandbox's outputs of messages before `before` into `into`; returns the state JSON. */
  private collect(into: SandboxOutput[], before: number): string {
    let taken: { o: unknown[][]; s: unknown };
    try {
      taken = JSON.parse(this.callString("take", [])) as { o: unknown[][]; s: unknown };
    } catch {
      return this.lastState; // the heap is exhausted: nothing of this run can be read
    }
    for (const o of taken.o) {
      const out = toOutput(o);
      if (out && out.i < before) into.push(out);
    }
    const state = JSON.stringify(taken.s ?? {});
    this.lastState = state;
    return state;
  }

  /** The last state read back from the rule (JSON). */
  get state(): string {
    return this.lastState;
  }

  private async rebuild(): Promise<void> {
    this.close();
    await this.load(this.lastState);
  }

  /** Disposes the runtime; a dispose that aborts (a leaked handle) drops the whole module instead. */
  close(): boolean {
    const l = this.loaded;
    this.loaded = null;
    if (!l) return true;
    try {
      if (l.fns) for (const h of Object.values(l.fns)) h.alive && h.dispose();
      if (l.host?.alive) l.host.dispose();
      l.vm.dispose();
      l.runtime.dispose();
      return true;
    } catch {
      this.disposeFailures++;
      return false; // the module instance is unreachable now and goes with the garbage
    }
  }
}

class SandboxCallError extends Error {
  override name = "SandboxCallError";
  constructor(readonly dumped: unknown) {
    super(typeof dumped === "object" && dumped && "message" in dumped ? String((dumped as { message: unknown }).message) : String(dumped));
  }
}

