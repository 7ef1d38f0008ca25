// The gateway's side of one plugin process: spawns child.ts under `prlimit --as` (a memory cap the
// plugin cannot lift: past it allocations fail in the child only), loads the plugin, and makes calls
// with a deadline each. A call past its deadline SIGKILLs the child (measured: ~2 ms; the only thing
// that stops a WebAssembly loop); a crash, an unhandled rejection or an out-of-memory abort ends the
// child, and every pending call rejects with the reason. Nothing a plugin does reaches this process.
import { fileURLToPath } from "node:url";
import type { Subprocess } from "bun";
import { deadline, TIMED_OUT } from "../../storage/time.ts";
import type { ChildToHost, LoadRequest, LoadResult, LogLevel, PluginKind, PluginMethod } from "./protocol.ts";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

/**
 * Address space added to the cap of a process running a WebAssembly plugin. JSC reserves virtual
 * address space for each WebAssembly memory (its bounds-check-free "fast memory"); under a cap that
 * leaves no room for it the module runs without it: measured through PluginRegistry.decoder with the
 * AssemblyScript meter decoder, batch 100: 47 µs a frame at --as 768 MB, 12.6 at 1536, 0.5 at 4608.
 * The module's real memory stays held by its own ceiling (memoryMaxPages: WebAssembly.Memory maximum),
 * so the reservation costs no RAM; 16 GB leaves room for a re-created instance next to the old one.
 */
export const WASM_ADDRESS_RESERVE_MB = 16 * 1024;

export class PluginTimeout extends Error {
  override name = "PluginTimeout";
  constructor(
    readonly plugin: string,
    readonly method: string,
    readonly ms: number,
  ) {
    super(`plugin '${plugin}': ${method} did not answer within ${ms} ms (process killed)`);
  }
}

/** The plugin's process ended (crash, fatal error, out of memory, kill). */
export class PluginCrashed extends Error {
  override name = "PluginCrashed";
  constructor(
    readonly plugin: string,
    readonly reason: string,
  ) {
    super(`plugin '${plugin}': process ended: ${reason}`);
  }
}

/** The plugin's code threw (or rejected) in a call; the process lives on. */
export class PluginCallError extends Error {
  override name = "PluginCallError";
  constructor(
    readonly plugin: string,
    readonly method: string,
    readonly remote: { name: string; message: string },
  ) {
    super(`plugin '${plugin}': ${method}: ${remote.name}: ${remote.message}`);
  }
}

export interface PluginProcessOptions {
  /** plugin name, for messages */
  name: string;
  dir: string;
  entry: string;
  kind: PluginKind;
  config?: unknown;
  endpoints?: string[];
  /** address-space cap of the child (prlimit --as); Bun itself needs about 600 MB of it */
  memoryMb: number;
  /** WebAssembly memory ceiling in 64 KiB pages */
  memoryMaxPages?: number;
  /** default deadline of a call */
  callTimeoutMs: number;
  /** deadline of spawn + load */
  loadTimeoutMs?: number;
  onLog?(level: LogLevel, msg: string): void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  method: string;
}

export class PluginProcess {
  /** methods the loaded instance has */
  methods: readonly PluginMethod[] = [];
  /** resolves with the reason once the child has ended */
  readonly ended: Promise<string>;
  private readonly child: Subprocess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private endReason = "";

  private constructor(private readonly opts: PluginProcessOptions) {
    this.child = Bun.spawn({
      cmd: ["prlimit", `--as=${(opts.memoryMb + (opts.entry.endsWith(".wasm") ? WASM_ADDRESS_RESERVE_MB : 0)) * 1024 * 1024}`, "--", process.execPath, CHILD],
      cwd: opts.dir,
      // the plugin sees no secret of the gateway's environment
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
      serialization: "advanced",
      ipc: (msg: ChildToHost) => this.onMessage(msg),
    });
    this.ended = this.child.exited.then((code) => {
      this.endReason ||= (this.child.signalCode ? `killed by ${this.child.signalCode}` : `exit code ${code}`);
      for (const p of this.pending.values()) p.reject(new PluginCrashed(opts.name, this.endReason));
      this.pending.clear();
      return this.endReason;
    });
  }

  /** Spawns the child and loads the plugin in it; rejects (and kills the child) if that fails or times out. */
  static async start(opts: PluginProcessOptions): Promise<PluginProcess> {
    const p = new PluginProcess(opts);
    const req: Omit<LoadRequest, "id"> = {
      op: "load",
      dir: opts.dir,
      entry: opts.entry,
      kind: opts.kind,
      config: opts.config ?? {},
      memoryMaxPages: opts.memoryMaxPages ?? 256,
      endpoints: opts.endpoints ?? [],
      callTimeoutMs: opts.callTimeoutMs,
    };
    try {
      const r = (await p.request(req, "load", opts.loadTimeoutMs ?? Math.max(opts.callTimeoutMs, 5000))) as LoadResult;
      p.methods = r.methods;
      return p;
    } catch (e) {
      p.kill("load failed");
      throw e;
    }
  }

  get pid(): number {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.endReason && this.child.exitCode === null && this.child.signalCode === null;
  }

  has(method: PluginMethod): boolean {
    return this.methods.includes(method);
  }

  /** One call into the plugin; past the deadline the child is killed and this rejects with PluginTimeout. */
  call(method: PluginMethod, args: unknown[] = [], timeoutMs = this.opts.callTimeoutMs): Promise<unknown> {
    return this.request({ op: "call", method, args }, method, timeoutMs);
  }

  kill(reason = "stopped by the gateway"): void {
    this.endReason ||= reason;
    this.child.kill("SIGKILL");
  }

  private async request(msg: Record<string, unknown>, method: string, timeoutMs: number): Promise<unknown> {
    if (!this.alive) throw new PluginCrashed(this.opts.name, this.endReason || "not running");
    const id = this.nextId++;
    const answer = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject, method }));
    this.child.send({ ...msg, id });
    const out = await deadline(answer, timeoutMs);
    if (out === TIMED_OUT) {
      this.pending.delete(id);
      const err = new PluginTimeout(this.opts.name, method, timeoutMs);
      this.kill(err.message);
      throw err;
    }
    return out;
  }

  private onMessage(msg: ChildToHost): void {
    if (msg.op === "result") {
      const p = this.pending.get(msg.id);
      if (!p) return; // an answer after its deadline: the child is being killed
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new PluginCallError(this.opts.name, p.method, msg.error));
    } else if (msg.op === "log") this.opts.onLog?.(msg.level, msg.msg);
    // the child is ending itself; end it now, so that no further call is answered by a broken plugin
    else if (msg.op === "fatal") this.kill(`${msg.error.name}: ${msg.error.message}`);
  }
}
