// The QuickJS sandbox of one user rule: its own WebAssembly module instance, runtime and context, so a
// fault (a time limit, the memory ceiling, a leaked handle aborting dispose) ends that rule only. Inside
// there is only the ECMAScript language and the host API defined by the prelude below: no process,
// require, Bun, fetch, timers or file access (quickjs-emscripten's context has none of them).
// Values cross as JSON text (bigint as a decimal string), so no object of one realm is seen by the other.
// Outputs of a run are collected in the sandbox with the index of the message that produced them, and
// read back by the host after the run: the host validates every output (rule-outputs.ts); the in-sandbox
// checks only give the author an early error.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from "quickjs-emscripten-core";
import variant from "@jitl/quickjs-wasmfile-release-sync";

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

/** What the rule asked for, in the order asked; `i` is the index of the message in its batch (-1: timer). */
export type SandboxOutput =
  | { type: "cmd"; i: number; tag: string; value: unknown }
  | { type: "set"; i: number; tag: string; value: unknown }
  | { type: "raise"; i: number; name: string; priority: unknown; message: unknown }
  | { type: "clear"; i: number; name: string }
  | { type: "log"; i: number; level: "debug" | "info" | "warn" | "error"; text: string };

/** What a rule's onMessage receives as `msg`. */
export interface RuleMessage {
  tag: string;
  value: unknown;
  /** OPC UA StatusCode (0 = Good) */
  quality: number;
  /** source timestamp, µs since the epoch */
  ts: number;
}

interface EncodedBatch {
  cols: Float64Array;
  extras: string;
  fromName: number;
}

export type FaultKind = "timeout" | "memory" | "stack" | "error";

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

/** A log line's cap (the owner's plugin design) */
export const LOG_LINE_BYTES = 4096;

// Runs once in a fresh context before the rule's module. Everything the host calls lives in one frozen,
// non-configurable object `__host`: the rule may break its own API but cannot redirect the host's calls.
const PRELUDE = String.raw`
(() => {
  const stringify = JSON.stringify, parse = JSON.parse, freeze = Object.freeze, define = Object.defineProperty, now = Date.now;
  const MAX = __MAX_OUTPUTS__, CAP = ${LOG_LINE_BYTES};
  let out = [], idx = -1, cols = new Float64Array(0), extras = [], n = 0, names = [], onMessage = null, onTimer = null, writes = new Set(), sets = new Set();
  const push = (e) => { if (out.length >= MAX) throw new Error("a run may produce at most " + MAX + " outputs"); out.push(e); };
  const big = (_k, v) => (typeof v === "bigint" ? v.toString() : v);
  const text = (args) => { let s = args.map((a) => (typeof a === "string" ? a : stringify(a, big))).join(" "); return s.length > CAP ? s.slice(0, CAP) : s; };
  globalThis.sendCommand = (tag, value) => {
    if (!writes.has(tag)) throw new Error("sendCommand: tag '" + tag + "' is not in this rule's meta.writes");
    push(["cmd", idx, tag, value]);
  };
  globalThis.setTag = (tag, value) => {
    if (!sets.has(tag)) throw new Error("setTag: tag '" + tag + "' is not in this rule's meta.sets");
    push(["set", idx, tag, value]);
  };
  globalThis.raiseAlarm = (name, opts) => push(["raise", idx, String(name), opts?.priority ?? "medium", opts?.message ?? String(name)]);
  globalThis.clearAlarm = (name) => push(["clear", idx, String(name)]);
  const level = (l) => (...args) => push(["log", idx, l, text(args)]);
  globalThis.log = freeze({ debug: level("debug"), info: level("info"), warn: level("warn"), error: level("error") });
  globalThis.state = {};
  define(globalThis, "__host", { enumerable: false, configurable: false, writable: false, value: freeze({
    init(stateJson, writesJson, setsJson) { globalThis.state = parse(stateJson); writes = new Set(parse(writesJson)); sets = new Set(parse(setsJson)); },
    bind(ns) { onMessage = typeof ns.onMessage === "function" ? ns.onMessage : null; onTimer = typeof ns.onTimer === "function" ? ns.onTimer : null;
      return stringify({ meta: ns.meta, onMessage: !!onMessage, onTimer: !!onTimer }, big); },
    // a batch arrives as columns (tag id, kind, value, quality, ts per message): parsing JSON in QuickJS
    // cost more than the rule itself; kind 0 number, 1 true, 2 false, 3 null, 4 extras[value]
    load(buf, extrasJson, newNames) {
      cols = new Float64Array(buf); n = cols.length / 5; idx = -1;
      extras = extrasJson ? parse(extrasJson) : [];
      if (newNames) for (const t of parse(newNames)) names.push(t);
    },
    // messages run in slices: a slice returns to the host once it has used a tenth of the limit, and
    // the host calls again with a fresh deadline, so every message has at least 90% of the limit to itself
    run(from, sliceMs) {
      if (!onMessage) return n;
      const start = now();
      for (let i = from; i < n; i++) {
        if (i > from && now() - start > sliceMs) return i;
        idx = i;
        const k = i * 5, kind = cols[k + 1];
        const value = kind === 0 ? cols[k + 2] : kind === 1 ? true : kind === 2 ? false : kind === 3 ? null : extras[cols[k + 2]];
        onMessage({ tag: names[cols[k]], value, quality: cols[k + 3], ts: cols[k + 4] });
      }
      idx = n;
      return n;
    },
    timer(now) { idx = -1; if (onTimer) onTimer(now); },
    at() { return idx; },
    take() { const o = out; out = []; return stringify({ o, s: globalThis.state === undefined ? null : globalThis.state }, big); },
  }) });
})();
`;

const isLimit = (k: FaultKind) => k !== "error";

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

/**
 * One rule's sandbox. `load()` evaluates the file (syntax errors -> RuleLoadError with line), then
 * `runBatch(msgs)` calls onMessage per message with a deadline per message, and `runTimer(now)` calls
 * onTimer. A limit fault (time, memory, stack) disposes the runtime and builds a fresh one from the same
 * source and the last good state; an exception thrown by the rule only skips its message.
 */
export class Sandbox {
  private loaded: Loaded | null = null;
  private deadline = Infinity;
  /** why the interrupt handler stopped the last call, if it did */
  private interrupted: "timeout" | null = null;
  private isMemoryFull = () => false;
  private lastState = "{}";
  /** tag names by id as sent to the sandbox (ids are per sandbox; a rebuilt one is sent all names again) */
  private readonly tagNames: string[] = [];
  private readonly tagIds = new Map<string, number>();
  private namesSent = 0;
  /** disposals that aborted (a leaked handle): the module was dropped instead */
  disposeFailures = 0;
  exports: RuleExports = { meta: undefined, onMessage: false, onTimer: false };

  constructor(
    readonly file: string,
    private readonly source: string,
    readonly limits: SandboxLimits = DEFAULT_LIMITS,
    private readonly grants: { writes: readonly string[]; sets: readonly string[] } = { writes: [], sets: [] },
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
      if (performance.now() <= this.deadline) return false;
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
   */
  async runBatch(msgs: readonly RuleMessage[]): Promise<BatchResult> {
    if (!this.loaded) await this.load(this.lastState);
    const outputs: SandboxOutput[] = [];
    const faults: RunFault[] = [];
    const batch = this.encode(msgs);
    this.loadBatch(batch);
    let from = 0;
    while (from < msgs.length) {
      const r = this.guarded("run", from);
      if ("next" in r) {
        from = r.next;
        continue;
      }
      const fault = r.fault;
      const at = Math.min(msgs.length - 1, Math.max(from, this.currentIndex() ?? from));
      const f: RunFault = { ...fault, at };
      faults.push(f);
      // the outputs of the messages before it are kept (when an exhausted heap still lets them be read);
      // the faulting message's own outputs are dropped: a message's outputs apply whole or not at all
      this.collect(outputs, at);
      if (isLimit(fault.kind)) {
        f.rebuilt = true;
        await this.rebuild();
        this.loadBatch(batch);
      }
      from = at + 1;
    }
    const state = this.collect(outputs, Infinity);
    return { outputs, faults, state };
  }

  /** Columns of a batch (see the prelude's load) and the tag names the sandbox has not seen yet. */
  private encode(msgs: readonly RuleMessage[]): EncodedBatch {
    const cols = new Float64Array(msgs.length * 5);
    const extras: unknown[] = [];
    const first = this.tagNames.length;
    for (let i = 0, k = 0; i < msgs.length; i++, k += 5) {
      const m = msgs[i]!;
      let id = this.tagIds.get(m.tag);
      if (id === undefined) {
        id = this.tagNames.push(m.tag) - 1;
        this.tagIds.set(m.tag, id);
      }
      cols[k] = id;
      const v = m.value;
      if (typeof v === "number") cols[k + 2] = v;
      else if (v === true) cols[k + 1] = 1;
      else if (v === false) cols[k + 1] = 2;
      else if (v === null) cols[k + 1] = 3;
      else {
        cols[k + 1] = 4;
        cols[k + 2] = extras.push(typeof v === "bigint" ? v.toString() : v) - 1;
      }
      cols[k + 3] = m.quality;
      cols[k + 4] = m.ts;
    }
    return { cols, extras: extras.length ? JSON.stringify(extras) : "", fromName: first };
  }

  private loadBatch(b: EncodedBatch): void {
    const { vm, fns, host } = this.loaded!;
    const from = Math.min(b.fromName, this.namesSent);
    const names = from < this.tagNames.length ? JSON.stringify(this.tagNames.slice(from)) : "";
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

// emscripten's initial memory of the variant (INITIAL_MEMORY: code data, C stack, the allocator's start)
const BASE_PAGES = 256;
const PAGE = 65536;
let compiled: Promise<WebAssembly.Module> | null = null;

/** The QuickJS WebAssembly code, compiled once per process (each rule instantiates it with its own memory). */
function quickjsWasm(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const pkg = createRequire(import.meta.url).resolve("@jitl/quickjs-wasmfile-release-sync/package.json");
    return WebAssembly.compile(await Bun.file(join(dirname(pkg), "dist", "emscripten-module.wasm")).arrayBuffer());
  })();
  return compiled;
}

/**
 * A QuickJS module instance whose WebAssembly memory cannot grow past base + `memoryBytes`. QuickJS's own
 * limit (setMemoryLimit) does not count everything in this build (an ArrayBuffer's bytes are not), and
 * without a bound the wasm memory grew to gigabytes in seconds before an allocation failed; with it,
 * `for(;;) keep.push(new Float64Array(1 << 17))` stops at the ceiling in under 100 ms.
 */
async function boundedModule(memoryBytes: number): Promise<{ module: QuickJSWASMModule; memory: WebAssembly.Memory; maxBytes: number }> {
  const pages = BASE_PAGES + Math.ceil(memoryBytes / PAGE);
  const memory = new WebAssembly.Memory({ initial: BASE_PAGES, maximum: pages });
  const module = await newQuickJSWASMModuleFromVariant(newVariant(variant, { wasmModule: await quickjsWasm(), wasmMemory: memory }));
  return { module, memory, maxBytes: pages * PAGE };
}

export const bigintAsString = (_k: string, v: unknown): unknown => (typeof v === "bigint" ? v.toString() : v);

/** An output entry as the sandbox wrote it, checked for shape (the rule may have tampered with it). */
function toOutput(o: unknown): SandboxOutput | null {
  if (!Array.isArray(o) || typeof o[1] !== "number") return null;
  const [type, i] = o as [unknown, number];
  const str = (v: unknown) => (typeof v === "string" ? v : String(v));
  switch (type) {
    case "cmd":
      return { type, i, tag: str(o[2]), value: o[3] };
    case "set":
      return { type, i, tag: str(o[2]), value: o[3] };
    case "raise":
      return { type, i, name: str(o[2]), priority: o[3], message: o[4] };
    case "clear":
      return { type, i, name: str(o[2]) };
    case "log": {
      const level = ["debug", "info", "warn", "error"].includes(o[2] as string) ? (o[2] as "info") : "info";
      const text = str(o[3]);
      return { type, i, level, text: Buffer.byteLength(text) > LOG_LINE_BYTES ? Buffer.from(text).subarray(0, LOG_LINE_BYTES).toString() : text };
    }
    default:
      return null;
  }
}
