// The host of WebAssembly plugins (ABI.md): loads a core module (or, through component.ts, a component),
// checks its imports, exports and memory ceiling before anything of it runs, and calls it with a time
// limit per call. A trap re-creates the instance from the compiled module, so one bad payload costs one
// instantiation (about 0.1 ms for the SDK example), not the plugin. This runs inside the plugin's child
// process: a loop that never calls the interrupt check cannot be stopped here (a Worker cannot stop it
// either); the process host kills the child at the deadline.
import type { AckCode } from "../../../schemas/acks.ts";
import type { LoadWasmPlugin, PayloadFailure, PluginCommand, PluginInit, PluginInstance, PluginWriteResult, WasmLoadOptions } from "../protocol.ts";
import { WasmDeadlineError, WasmOutputError, WasmRefusedError, WasmTrapError } from "./errors.ts";
import { hostImports, KNOWN_IMPORTS, limitLog, type LogLevel } from "./host-imports.ts";
import { inspectModule, isComponent, type ModuleShape } from "./inspect.ts";
import { encodeFrames, packBatch, readFrames, type DecodedFrame } from "./wire.ts";

/** A copy of a module's output (read on the gateway's side: readPackedBatch checks it there). */
const copyOut = (mem: Uint8Array, ptr: number, len: number): Uint8Array => mem.slice(ptr, ptr + len);

export const WASM_API_VERSION = 1;
export const DEFAULT_CALL_TIMEOUT_MS = 1000;

/** The seam's options (protocol.ts: kind, config for the module's `init` as JSON, memoryMaxPages, log, now) and more. */
export interface WasmPluginOptions extends WasmLoadOptions {
  /** a SharedArrayBuffer-backed flag: non-zero asks the running call to stop at its next check */
  stopFlag?: Int32Array;
  /** told of every trap and stopped call after the instance was re-created */
  onFault?(err: WasmTrapError | WasmDeadlineError): void;
  /** components: where their transpiled JavaScript is kept (default: <tmpdir>/edge-wasm-components) */
  cacheDir?: string;
}

/** The tag and value of a command: what a module's `write` gets. */
export type WasmCommand = Pick<PluginCommand, "tag" | "value">;

/** A PluginInstance (protocol.ts) whose calls are synchronous; decoders have decode, drivers poll (and write). */
export interface WasmPluginInstance extends PluginInstance {
  readonly kind: "driver" | "decoder";
  /** a new config for the module's `init`: the instance is re-created with it */
  init(init: Pick<PluginInit, "config">): void;
  /** one frame list per payload; a payload that traps or is refused by the module gives [] (reported) */
  decode?(batch: Uint8Array[]): DecodedFrame[][];
  /** decode, with the frames left in the ABI's encoding (wire.ts packBatch) for the trip to the gateway */
  decodePacked?(batch: Uint8Array[]): Uint8Array;
  poll?(): DecodedFrame[];
  write?(cmd: WasmCommand): PluginWriteResult;
  shutdown(): void;
  /** pages: the instance's memory now, in 64 KiB pages */
  stats(): { calls: number; traps: number; instances: number; pages: number };
}

/** Loads a plugin: a core module here, a component through component.ts. Refusals throw WasmRefusedError. */
export async function loadWasmPlugin(bytes: Uint8Array, opts: WasmPluginOptions): Promise<WasmPluginInstance> {
  if (isComponent(bytes)) {
    const { loadComponentPlugin } = await import("./component.ts");
    return await loadComponentPlugin(bytes, opts);
  }
  const shape = inspectModule(bytes);
  checkImports(shape);
  const memoryMaxPages = checkMemory(shape, opts.memoryMaxPages);
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes);
  } catch (e) {
    throw new WasmRefusedError("compile", (e as Error).message);
  }
  checkExports(module, opts.kind, shape);
  const plugin = new CorePlugin(module, shape, memoryMaxPages, { ...opts, log: limitLog(opts.log) });
  plugin.instantiate();
  return plugin;
}
// the seam child.ts calls (protocol.ts): checked here, so that a change on either side fails typecheck
loadWasmPlugin satisfies LoadWasmPlugin;

function checkImports(shape: ModuleShape): void {
  for (const imp of shape.imports) {
    if (imp.module !== "env" || !KNOWN_IMPORTS.has(imp.name)) {
      throw new WasmRefusedError(`import ${imp.module}.${imp.name}`, `not provided by the host (allowed: env.${[...KNOWN_IMPORTS].join(", env.")})`);
    }
  }
}

/** The maximum the instance gets: the ceiling, or the module's own lower maximum. */
function checkMemory(shape: ModuleShape, ceiling: number): number {
  const mem = shape.memory;
  if (!mem) return 0;
  if (mem.minPages > ceiling) throw new WasmRefusedError("memory", `needs ${mem.minPages} pages at start, above the ceiling of ${ceiling} pages`);
  if (mem.imported) return Math.min(ceiling, mem.maxPages ?? ceiling);
  if (mem.maxPages === undefined) {
    throw new WasmRefusedError("memory", `the module defines its memory without a maximum; import env.memory (AssemblyScript: --importMemory) or declare a maximum of at most ${ceiling} pages`);
  }
  if (mem.maxPages > ceiling) throw new WasmRefusedError("memory", `declared maximum of ${mem.maxPages} pages is above the ceiling of ${ceiling} pages`);
  return mem.maxPages;
}

function checkExports(module: WebAssembly.Module, kind: "driver" | "decoder", shape: ModuleShape): void {
  const have = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  const need = ["api_version", "alloc", "dealloc", kind === "decoder" ? "decode" : "poll"];
  if (!shape.memory?.imported) need.push("memory");
  for (const name of need) if (!have.has(name)) throw new WasmRefusedError(`export ${name}`, `missing (a ${kind} exports ${need.join(", ")})`);
}

interface CoreExports {
  memory: WebAssembly.Memory;
  api_version(): number;
  alloc(len: number): number;
  dealloc(ptr: number, len: number): void;
  init?(ptr: number, len: number): number;
  decode?(ptr: number, len: number): bigint;
  poll?(): bigint;
  write?(ptr: number, len: number): number;
  shutdown?(): void;
}

/** write() result codes of the ABI, in order (0 = ok). */
const WRITE_CODES: AckCode[] = ["ok", "device_error", "device_address_error", "not_supported", "device_busy", "readback_mismatch"];

class CorePlugin implements WasmPluginInstance {
  readonly kind: "driver" | "decoder";
  private ex!: CoreExports;
  private inPtr = 0;
  private inCap = 0;
  private deadline = 0;
  private stopAsked = false;
  private readonly timeoutMs: number;
  private counts = { calls: 0, traps: 0, instances: 0 };

  constructor(
    private readonly module: WebAssembly.Module,
    private readonly shape: ModuleShape,
    private readonly memoryMaxPages: number,
    private readonly opts: WasmPluginOptions,
  ) {
    this.kind = opts.kind;
    this.timeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    if (opts.kind === "decoder") {
      this.decode = (batch) => this.eachPayload(batch, (bytes, ptr, len) => readFrames(bytes, ptr, len), () => []);
      // a failed payload crosses as its reason: the gateway refuses that message, saying why
      this.decodePacked = (batch) => packBatch(this.eachPayload<Uint8Array | PayloadFailure>(batch, copyOut, (failed) => ({ failed })));
    } else {
      this.poll = () => this.output("poll", () => (this.ex.poll as () => bigint)(), readFrames) ?? [];
      if (WebAssembly.Module.exports(module).some((e) => e.name === "write")) this.write = this.writeFrame;
    }
  }

  decode?: (batch: Uint8Array[]) => DecodedFrame[][];
  decodePacked?: (batch: Uint8Array[]) => Uint8Array;
  poll?: () => DecodedFrame[];
  write?: (cmd: WasmCommand) => PluginWriteResult;
  private config: unknown;

  init(init: Pick<PluginInit, "config">): void {
    this.config = init.config;
    this.instantiate();
  }

  /** A fresh instance: memory, imports, api version check and init(config). */
  instantiate(): void {
    const imported = this.shape.memory?.imported;
    const memory = imported ? new WebAssembly.Memory({ initial: this.shape.memory!.minPages, maximum: this.memoryMaxPages }) : undefined;
    const ctx = {
      // an imported memory is known before the module's start function runs (it may log or abort)
      memory: () => memory ?? this.ex.memory,
      log: this.opts.log,
      now: this.opts.now,
      shouldStop: () => this.checkStop(),
    };
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(this.module, hostImports(ctx, memory));
    } catch (e) {
      throw new WasmRefusedError("instantiate", (e as Error).message);
    }
    this.ex = { ...(instance.exports as unknown as CoreExports), memory: memory ?? (instance.exports.memory as WebAssembly.Memory) };
    this.inPtr = this.inCap = 0;
    this.counts.instances++;
    const version = this.guard("api_version", () => this.ex.api_version());
    if (version !== WASM_API_VERSION) throw new WasmRefusedError("api_version", `module speaks ABI ${version}, the host ${WASM_API_VERSION}`);
    if (this.ex.init) {
      const cfg = new TextEncoder().encode(JSON.stringify(this.config ?? this.opts.config ?? null));
      const rc = this.guard("init", () => this.ex.init!(this.copyIn(cfg), cfg.length));
      if (rc !== 0) throw new WasmRefusedError("init", `the module refused its config (code ${rc}; see its error log line)`);
    }
  }

  /** Decodes each payload and reads its output with `read`; a failed payload gives `failed(why)`. */
  private eachPayload<T>(batch: Uint8Array[], read: (mem: Uint8Array, ptr: number, len: number) => T, failed: (why: string) => T): T[] {
    const out: T[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const payload = batch[i]!;
      try {
        out[i] = this.output("decode", () => (this.ex.decode as (p: number, l: number) => bigint)(this.copyIn(payload), payload.length), read) ?? failed("the decoder refused the payload (see its log)");
      } catch (e) {
        // one bad payload costs its own frames only; a deadline ends the batch (its time is spent)
        if (e instanceof WasmOutputError) this.opts.log("error", e.message);
        else if (!(e instanceof WasmTrapError)) throw e;
        out[i] = failed((e as Error).message);
      }
    }
    return out;
  }

  private writeFrame(cmd: WasmCommand): PluginWriteResult {
    const bytes = encodeFrames([{ tag: cmd.tag, value: cmd.value }]);
    const rc = this.guard("write", () => (this.ex.write as (p: number, l: number) => number)(this.copyIn(bytes), bytes.length));
    const code = WRITE_CODES[rc] ?? "device_error";
    return { ok: code === "ok", code };
  }

  shutdown(): void {
    try {
      this.guard("shutdown", () => this.ex.shutdown?.());
    } catch {
      // a trap while shutting down changes nothing: the instance is dropped either way
    }
  }

  stats() {
    return { ...this.counts, pages: this.ex.memory.buffer.byteLength / 65536 };
  }

  /** Runs a call that returns packed (ptr, len) of frames; undefined when the module refused its input. */
  private output<T>(call: string, fn: () => bigint, read: (mem: Uint8Array, ptr: number, len: number, call: string) => T): T | undefined {
    const packed = this.guard(call, fn);
    if (packed < 0n) {
      this.opts.log("warn", `${call} refused its input (code ${packed})`);
      return undefined;
    }
    const mem = new Uint8Array(this.ex.memory.buffer); // after the call: memory may have grown
    return read(mem, Number(packed >> 32n), Number(packed & 0xffffffffn), call);
  }

  /** Copies bytes into the reused input buffer, growing it (alloc may grow memory: view taken after). */
  private copyIn(bytes: Uint8Array): number {
    if (bytes.length > this.inCap) {
      if (this.inCap) this.ex.dealloc(this.inPtr, this.inCap);
      this.inCap = Math.max(256, bytes.length * 2);
      this.inPtr = this.guard("alloc", () => this.ex.alloc(this.inCap));
    }
    new Uint8Array(this.ex.memory.buffer).set(bytes, this.inPtr);
    return this.inPtr;
  }

  /**
   * One call into the module with its deadline. Anything thrown out of WebAssembly leaves the module's
   * heap in an unknown state, so the instance is re-created before the error is reported.
   */
  private guard<T>(call: string, fn: () => T): T {
    this.counts.calls++;
    this.deadline = performance.now() + this.timeoutMs;
    this.stopAsked = false;
    let result: T;
    try {
      result = fn();
    } catch (e) {
      throw this.fault(call, e);
    }
    if (this.stopAsked) throw this.fault(call, undefined);
    return result;
  }

  private fault(call: string, cause: unknown): Error {
    const err = this.stopAsked ? new WasmDeadlineError(call, this.timeoutMs) : new WasmTrapError(call, (cause as Error)?.message ?? String(cause), { cause });
    this.counts.traps++;
    this.opts.log("error", `${err.message}; instance re-created`);
    this.instantiate();
    this.opts.onFault?.(err);
    return err;
  }

  private checkStop(): boolean {
    if (this.stopAsked) return true;
    const flagged = this.opts.stopFlag !== undefined && Atomics.load(this.opts.stopFlag, 0) !== 0;
    this.stopAsked = flagged || performance.now() > this.deadline;
    return this.stopAsked;
  }
}
