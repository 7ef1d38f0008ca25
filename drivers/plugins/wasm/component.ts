// Components (the `edge:plugin` WIT world in wit/plugin.wit) run through jco: the component is
// transpiled once into JavaScript plus core modules, kept in a cache folder named by its SHA-256, and
// instantiated from there. Transpiling costs about a second (loading jco alone ~0.5 s) while loading
// from the cache costs milliseconds, so only the first load of a given component pays it.
// A component may import only `edge:plugin/host`; WASI is refused (a plugin gets no files, clock or
// network that the host does not hand it). Components cannot be interrupted inside their own code:
// `should-stop` is offered, and the process host's deadline kill is the wall that holds.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { WasmDeadlineError, WasmRefusedError, WasmTrapError } from "./errors.ts";
import { capLogText, limitLog, LOG_LEVELS, LOG_LINE_MAX_BYTES, type LogLevel } from "./host-imports.ts";
import { DEFAULT_CALL_TIMEOUT_MS, WASM_API_VERSION, type WasmPluginInstance, type WasmPluginOptions } from "./runtime.ts";
import type { DecodedFrame } from "./wire.ts";

export const HOST_INTERFACE = "edge:plugin/host@0.1.0";

/**
 * Compiled core modules by file (the folder is named by the component's SHA-256, so a path never
 * changes content): a re-created instance or a second load skips compiling QuickJS's 1.6 MB again.
 */
const compiled = new Map<string, WebAssembly.Module>();

interface ComponentValue {
  tag: "null" | "number" | "boolean" | "text" | "integer";
  val?: number | boolean | string | bigint;
}
interface ComponentFrame {
  tag: string;
  value: ComponentValue;
  ts?: number | null;
  quality?: number | null;
}
interface ComponentExports {
  apiVersion(): number;
  decode(payload: Uint8Array): ComponentFrame[];
}
type Instantiate = (getCoreModule: (path: string) => WebAssembly.Module, imports: Record<string, unknown>) => ComponentExports;

export async function loadComponentPlugin(bytes: Uint8Array, opts: WasmPluginOptions): Promise<WasmPluginInstance> {
  if (opts.kind !== "decoder") throw new WasmRefusedError("component", "only decoders can be components so far (the edge:plugin world has no driver yet)");
  const dir = await transpiled(bytes, opts.cacheDir ?? join(tmpdir(), "edge-wasm-components"));
  const mod = (await import(join(dir, "plugin.js"))) as { instantiate: Instantiate };
  const plugin = new ComponentPlugin(mod.instantiate, dir, { ...opts, log: limitLog(opts.log) });
  plugin.instantiate();
  return plugin;
}

/** The folder with the transpiled component, made on first use (written aside, then renamed into place). */
export async function transpiled(bytes: Uint8Array, cacheDir: string): Promise<string> {
  const dir = join(cacheDir, createHash("sha256").update(bytes).digest("hex"));
  if (existsSync(join(dir, "plugin.js"))) return dir;
  const { transpile } = await import("@bytecodealliance/jco");
  let out: Awaited<ReturnType<typeof transpile>>;
  try {
    out = await transpile(bytes, { name: "plugin", instantiation: "sync", noTypescript: true, quiet: true });
  } catch (e) {
    throw new WasmRefusedError("component", `jco cannot transpile it: ${(e as Error).message}`);
  }
  checkComponentImports(out.imports);
  const tmp = `${dir}.${process.pid}.tmp`;
  for (const [name, file] of Object.entries(out.files)) {
    mkdirSync(dirname(join(tmp, name)), { recursive: true });
    writeFileSync(join(tmp, name), file);
  }
  try {
    renameSync(tmp, dir);
  } catch (e) {
    // another process put the same component in place first: theirs is identical
    if (!existsSync(join(dir, "plugin.js"))) throw e;
  }
  return dir;
}

/** A component may import the host interface only: WASI would hand it files, sockets and clocks. */
export function checkComponentImports(imports: readonly string[]): void {
  const foreign = imports.find((i) => i !== HOST_INTERFACE && i !== "edge:plugin/host");
  if (foreign) throw new WasmRefusedError(`import ${foreign}`, `not provided by the host (a component may import only ${HOST_INTERFACE})`);
}

class ComponentPlugin implements WasmPluginInstance {
  readonly kind = "decoder" as const;
  private ex!: ComponentExports;
  private deadline = 0;
  private stopAsked = false;
  private readonly timeoutMs: number;
  private counts = { calls: 0, traps: 0, instances: 0 };

  constructor(
    private readonly instantiateJs: Instantiate,
    private readonly dir: string,
    private readonly opts: WasmPluginOptions,
  ) {
    this.timeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  instantiate(): void {
    const host = {
      log: (level: LogLevel, msg: string) => this.opts.log(LOG_LEVELS.includes(level) ? level : "info", capLine(msg)),
      nowMs: () => this.opts.now(),
      shouldStop: () => this.checkStop(),
    };
    try {
      this.ex = this.instantiateJs((path) => this.coreModule(path), { [HOST_INTERFACE]: host, "edge:plugin/host": host });
    } catch (e) {
      throw new WasmRefusedError("instantiate", (e as Error).message);
    }
    this.counts.instances++;
    const version = this.ex.apiVersion();
    if (version !== WASM_API_VERSION) throw new WasmRefusedError("api_version", `component speaks ABI ${version}, the host ${WASM_API_VERSION}`);
  }

  decode(batch: Uint8Array[]): DecodedFrame[][] {
    return batch.map((payload) => {
      this.counts.calls++;
      this.deadline = performance.now() + this.timeoutMs;
      this.stopAsked = false;
      try {
        const frames = this.ex.decode(payload).map(toDecoded);
        if (this.stopAsked) throw this.fault(new WasmDeadlineError("decode", this.timeoutMs));
        return frames;
      } catch (e) {
        if (e instanceof WasmDeadlineError) throw e;
        // a `result` error is the component's refusal of this payload; anything else is a trap
        if (isComponentError(e)) {
          this.opts.log("warn", `decode refused its input: ${String((e as { payload?: unknown }).payload ?? (e as Error).message)}`);
          return [];
        }
        if (this.stopAsked) throw this.fault(new WasmDeadlineError("decode", this.timeoutMs));
        this.fault(new WasmTrapError("decode", (e as Error)?.message ?? String(e), { cause: e }));
        return [];
      }
    });
  }

  /** components take no config yet (the decoder world has no init) */
  init(): void {}

  shutdown(): void {}

  /** pages: not known for a component (its core modules keep their memories to themselves) */
  stats() {
    return { ...this.counts, pages: 0 };
  }

  private fault<E extends WasmTrapError | WasmDeadlineError>(err: E): E {
    this.counts.traps++;
    this.opts.log("error", `${err.message}; instance re-created`);
    this.instantiate();
    this.opts.onFault?.(err);
    return err;
  }

  private coreModule(path: string): WebAssembly.Module {
    const file = join(this.dir, path);
    let m = compiled.get(file);
    if (!m) compiled.set(file, (m = new WebAssembly.Module(readFileSync(file))));
    return m;
  }

  private checkStop(): boolean {
    const flagged = this.opts.stopFlag !== undefined && Atomics.load(this.opts.stopFlag, 0) !== 0;
    this.stopAsked ||= flagged || performance.now() > this.deadline;
    return this.stopAsked;
  }
}

/** jco throws its own ComponentError (name left "Error") carrying the `err` case as `payload`. */
function isComponentError(e: unknown): boolean {
  return e instanceof Error && e.constructor.name === "ComponentError" && Object.hasOwn(e, "payload");
}

/** Strings cross as JS strings here; the cap is still on UTF-8 bytes, as for core modules. */
function capLine(msg: string): string {
  return msg.length * 3 <= LOG_LINE_MAX_BYTES ? msg : capLogText(new TextEncoder().encode(msg));
}

function toDecoded(f: ComponentFrame): DecodedFrame {
  const v = f.value;
  let value: DecodedFrame["value"] = v.tag === "null" ? null : (v.val as DecodedFrame["value"]);
  if (typeof value === "bigint" && value >= -9007199254740991n && value <= 9007199254740991n) value = Number(value);
  const out: DecodedFrame = { tag: f.tag, value };
  if (f.ts != null) out.ts = f.ts;
  if (f.quality != null) out.quality = f.quality;
  return out;
}
