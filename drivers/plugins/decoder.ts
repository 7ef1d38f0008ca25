// A decoder plugin as the gateway calls it (drivers/mqtt/decoder.ts PayloadDecoder): one child process
// per decoder plugin (host.ts), started at the first batch, with the plugins' call deadline and memory
// cap. A trap or a refusal costs that payload only (it crosses as its reason); a crash, a hang past the
// deadline or an out-of-memory ends the process, that batch fails, and the next batch starts a fresh
// process, after a backoff when crashes repeat (1x, 2x, 4x ... the base, capped); while the backoff
// runs, calls fail at once (the MQTT source refuses those messages) instead of queueing behind it.
// The packed path (decodePacked: one buffer per batch) is used when the plugin has it (WebAssembly).
import type { DecoderStatus } from "../../schemas/plugins.ts";
import { backoffDelay, type BackoffSettings } from "../../storage/time.ts";
import type { PayloadDecoder } from "../mqtt/decoder.ts";
import { PluginCallError, PluginCrashed, PluginProcess, type PluginProcessOptions } from "./host.ts";
import { checkFiles, PluginRefused } from "./manifest.ts";
import type { PayloadFailure, PluginFrame } from "./protocol.ts";
import type { VerifiedPlugin } from "./trust.ts";
import { readPackedBatch } from "./wasm/wire.ts";

/** The decoder's process is down (backing off after a crash, or its plugin is no longer loaded). */
export class DecoderUnavailable extends Error {
  override name = "DecoderUnavailable";
  constructor(
    readonly plugin: string,
    reason: string,
  ) {
    super(`decoder '${plugin}' is not available: ${reason}`);
  }
}

/** What a decoder needs from the registry. */
export interface PluginDecoderHost {
  current(name: string): VerifiedPlugin | undefined;
  refused(e: PluginRefused): void;
  processOptions(): Pick<PluginProcessOptions, "memoryMb" | "callTimeoutMs">;
  log(pluginName: string, level: string, msg: string): void;
}

type Outcome = PluginFrame[] | PayloadFailure;

export class PluginDecoder implements PayloadDecoder {
  private proc: PluginProcess | null = null;
  private starting: Promise<PluginProcess> | null = null;
  /** consecutive crashes (reset by a batch that succeeds): the backoff's attempt */
  private failures = 0;
  private downUntil = 0;
  private lastError = "";
  private batches = 0;
  private crashes = 0;
  private version: string | undefined;
  /** bumped by restart(): a start begun before it must not be used */
  private generation = 0;

  constructor(
    readonly name: string,
    private readonly host: PluginDecoderHost,
    private readonly backoff: BackoffSettings,
  ) {}

  async decode(batch: Uint8Array[]): Promise<Outcome[]> {
    const proc = await this.process();
    try {
      const out = proc.has("decodePacked") ? this.unpack((await proc.call("decodePacked", [batch])) as Uint8Array) : this.checked(await proc.call("decode", [batch]), batch.length);
      this.failures = 0;
      this.batches++;
      return out;
    } catch (e) {
      // a throw inside the plugin leaves its process serving; anything else ended it
      if (!(e instanceof PluginCallError) && !proc.alive) this.ended(proc, e as Error);
      throw e;
    }
  }

  /** Ends the running process (a swap or an unload of the plugin): the next batch starts the current version. */
  restart(reason: string): void {
    this.generation++;
    this.failures = 0;
    this.downUntil = 0;
    const proc = this.proc;
    this.proc = null;
    this.starting = null;
    proc?.kill(reason);
  }

  status(): DecoderStatus {
    const p = this.proc?.alive ? this.proc : null;
    const backoffMs = Math.ceil(this.downUntil - performance.now());
    return {
      running: !!p,
      ...(p ? { pid: p.pid } : {}),
      ...(this.version ? { version: this.version } : {}),
      batches: this.batches,
      crashes: this.crashes,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(backoffMs > 0 ? { backoffMs } : {}),
    };
  }

  /** The running process, or a new one (at most one start at a time); throws fast while backing off. */
  private process(): Promise<PluginProcess> {
    if (this.proc?.alive) return Promise.resolve(this.proc);
    if (this.starting) return this.starting;
    const wait = this.downUntil - performance.now();
    if (wait > 0) return Promise.reject(new DecoderUnavailable(this.name, `restarting in ${Math.ceil(wait)} ms after: ${this.lastError}`));
    const generation = this.generation;
    const starting = this.start().then(
      (proc) => {
        if (generation !== this.generation) {
          proc.kill("replaced while starting");
          return this.process();
        }
        this.proc = proc;
        this.starting = null;
        void proc.ended.then((why) => this.ended(proc, new PluginCrashed(this.name, why)));
        return proc;
      },
      (e: Error) => {
        if (generation === this.generation) {
          this.starting = null;
          this.down(e);
        }
        throw e;
      },
    );
    this.starting = starting;
    return starting;
  }

  private async start(): Promise<PluginProcess> {
    const p = this.host.current(this.name);
    if (!p) throw new DecoderUnavailable(this.name, "no such plugin is loaded");
    const proc = await startDecoderProcess(p, this.host);
    this.version = p.manifest.version;
    return proc;
  }

  /** A process that ended on its own (crash, deadline, memory): counted once, with the backoff. */
  private ended(proc: PluginProcess, e: Error): void {
    if (proc !== this.proc) return;
    this.proc = null;
    this.crashes++;
    this.down(e);
    this.host.log(this.name, "warn", `decoder process ended (${e.message}); the next batch starts a new one${this.downUntil > performance.now() ? ` after ${Math.round(this.downUntil - performance.now())} ms` : ""}`);
  }

  // the first crash restarts at the next batch (a hostile payload must not stall the good ones behind
  // it); repeated crashes back off, as the driver supervisor does
  private down(e: Error): void {
    this.failures++;
    this.lastError = e.message;
    this.downUntil = this.failures > 1 ? performance.now() + backoffDelay(this.failures - 1, this.backoff) : 0;
  }

  private unpack(buf: Uint8Array): Outcome[] {
    const failed = new Map<number, string>();
    const frames = readPackedBatch(buf, (i, err) => failed.set(i, err.message));
    return failed.size ? frames.map((f, i) => (failed.has(i) ? { failed: failed.get(i)! } : f)) : frames;
  }

  /** A JavaScript decoder's answer must be one frame list per payload: anything else fails the batch. */
  private checked(out: unknown, n: number): Outcome[] {
    if (!Array.isArray(out) || out.length !== n || !out.every((o) => Array.isArray(o))) {
      throw new PluginCallError(this.name, "decode", { name: "TypeError", message: `decode must return one array of frames per payload (${n} payloads)` });
    }
    return out as PluginFrame[][];
  }
}

/**
 * A process running decoder `p`, loaded and checked to decode; throws (the process killed) otherwise.
 * Also the trial of a swap (registry.ts): a new version that does not start is rolled back.
 */
export async function startDecoderProcess(p: VerifiedPlugin, host: PluginDecoderHost): Promise<PluginProcess> {
  const name = p.manifest.name;
  if (p.manifest.kind !== "decoder") throw new DecoderUnavailable(name, `plugin '${name}' is a ${p.manifest.kind}, not a decoder`);
  // the files on disk now must still be the signed ones (a folder edited in place since it was verified)
  try {
    await checkFiles(p.dir, p.manifest);
  } catch (e) {
    if (e instanceof PluginRefused) host.refused(e);
    throw e;
  }
  const proc = await PluginProcess.start({
    ...host.processOptions(),
    name,
    dir: p.dir,
    entry: p.manifest.entry,
    kind: "decoder",
    onLog: (level, msg) => host.log(name, level, msg),
  });
  if (!proc.has("decodePacked") && !proc.has("decode")) {
    proc.kill("no decode");
    throw new DecoderUnavailable(name, "the plugin has no decode()");
  }
  return proc;
}
