// A plugin driver as the driver manager sees it: the usual driver contract (drivers/contract.ts),
// proxied to the plugin's child process. connect() spawns the process and loads the plugin; readLoop
// polls it (one IPC round trip per batch of frames); any failure of the plugin (throw, crash, hang past
// the call deadline, out of memory) surfaces as a readLoop error, so the manager's supervisor does
// what it does for a built-in driver: Bad quality on every tag, Error, Backoff, restart.
// swap() replaces the running process with another version's, rolling back if the new one fails.
import type { CmdFrame, DataFrame, Variable } from "../../schemas/index.ts";
import { delay, deferred, type Deferred } from "../../storage/time.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type DriverMeta, type FrameSink, type WriteResult } from "../contract.ts";
import type { Endpoint } from "../endpoint.ts";
import { DriverConfigError, DriverError } from "../errors.ts";
import { PluginProcess, type PluginProcessOptions } from "./host.ts";
import { checkFiles, PluginRefused } from "./manifest.ts";
import type { FrameColumns, PluginInit, PluginWriteResult } from "./protocol.ts";
import type { VerifiedPlugin } from "./trust.ts";

/** What a plugin driver needs from the registry. */
export interface PluginDriverHost {
  /** the verified version that a new process loads now */
  current(name: string): VerifiedPlugin | undefined;
  attach(name: string, d: PluginDriver): void;
  detach(name: string, d: PluginDriver): void;
  refused(e: PluginRefused): void;
  processOptions(): Pick<PluginProcessOptions, "memoryMb" | "callTimeoutMs">;
  log(pluginName: string, level: string, msg: string): void;
}

export interface SwapOutcome {
  /** time between the old version's last poll and the new version's first */
  gapMs: number;
}

const DEFAULT_INTERVAL_MS = 1000;

export class PluginDriver implements Driver {
  private id = "";
  private config: Record<string, unknown> = {};
  private tags: readonly Variable[] = [];
  private intervalMs = DEFAULT_INTERVAL_MS;
  private endpointUrl: string | undefined;
  private proc: PluginProcess | null = null;
  private plugin: VerifiedPlugin | undefined;
  private sink: FrameSink | null = null;
  /** set while a swap holds the poll loop */
  private gate: Deferred<void> | null = null;
  /** resolved when the poll in flight (if any) has finished */
  private idle: Promise<void> = Promise.resolve();
  private lastPollAt = 0;

  constructor(
    readonly pluginName: string,
    private readonly host: PluginDriverHost,
  ) {}

  meta(): DriverMeta {
    return { name: `plugin:${this.pluginName}`, kind: "bridge", apiVersion: DRIVER_API_VERSION, features: ["read", "write"] };
  }

  /** The version running now (for status). */
  get version(): string | undefined {
    return this.plugin?.manifest.version;
  }

  get driverId(): string {
    return this.id;
  }

  init(init: DriverInit): void {
    this.id = init.id;
    const { intervalMs, ...rest } = init.config;
    if (intervalMs !== undefined && (typeof intervalMs !== "number" || !(intervalMs >= 0))) throw new DriverConfigError(init.id, "intervalMs", "must be a number of milliseconds >= 0");
    this.intervalMs = (intervalMs as number | undefined) ?? DEFAULT_INTERVAL_MS;
    this.config = rest;
    this.tags = init.tags;
    const p = this.host.current(this.pluginName);
    if (!p) throw new DriverConfigError(init.id, "plugin", `no plugin '${this.pluginName}' is loaded (see GET /api/plugins for refusals)`);
    if (p.manifest.kind !== "driver") throw new DriverConfigError(init.id, "plugin", `plugin '${this.pluginName}' is a ${p.manifest.kind}, not a driver`);
  }

  async connect(endpoint: Endpoint | undefined): Promise<void> {
    const p = this.host.current(this.pluginName);
    if (!p) throw new DriverError(this.id, `plugin '${this.pluginName}' is not loaded any more`);
    this.endpointUrl = endpoint?.url;
    this.proc = await this.start(p, endpoint);
    this.plugin = p;
    this.host.attach(this.pluginName, this);
  }

  /** Spawns and initialises one version; kills its process if any step fails. */
  private async start(p: VerifiedPlugin, endpoint: { url: string; scheme: string } | undefined): Promise<PluginProcess> {
    if (endpoint && !p.manifest.capabilities.endpoints.includes(endpoint.scheme)) {
      const e = new PluginRefused(p.manifest.name, "capability", `driver '${this.id}' gives it endpoint ${endpoint.url}, but the manifest requests only ${p.manifest.capabilities.endpoints.join(", ") || "no endpoint"}`);
      this.host.refused(e);
      throw new DriverConfigError(this.id, "endpoint", e.message);
    }
    // the files on disk now must still be the signed ones (a folder edited in place since it was verified)
    try {
      await checkFiles(p.dir, p.manifest);
    } catch (e) {
      if (e instanceof PluginRefused) this.host.refused(e);
      throw e;
    }
    const proc = await PluginProcess.start({
      ...this.host.processOptions(),
      name: p.manifest.name,
      dir: p.dir,
      entry: p.manifest.entry,
      kind: "driver",
      config: this.config,
      endpoints: endpoint ? [endpoint.url] : [],
      onLog: (level, msg) => this.host.log(p.manifest.name, level, msg),
    });
    try {
      const init: PluginInit = { id: this.id, config: this.config, tags: this.tags.map((t) => ({ tag: t.tag, type: t.type, group: t.group, access: t.access, ...(t.address ? { address: t.address } : {}) })), ...(endpoint ? { endpoint: endpoint.url } : {}) };
      if (proc.has("init")) await proc.call("init", [init]);
      if (proc.has("connect")) await proc.call("connect");
      if (!proc.has("poll")) throw new DriverError(this.id, `plugin '${p.manifest.name}' has no poll()`);
      return proc;
    } catch (e) {
      proc.kill("start failed");
      throw e;
    }
  }

  async readLoop(tx: FrameSink, signal: AbortSignal): Promise<void> {
    this.sink = tx;
    while (!signal.aborted) {
      if (this.gate) await this.gate.promise;
      const done = deferred<void>();
      this.idle = done.promise;
      try {
        await this.pollOnce(tx);
      } finally {
        done.resolve();
      }
      if (this.intervalMs > 0) await delay(this.intervalMs, signal);
      else tx.heartbeat();
    }
  }

  private async pollOnce(tx: FrameSink, proc = this.proc): Promise<void> {
    if (!proc) throw new DriverError(this.id, "plugin process not started");
    const cols = (await proc.call("poll")) as FrameColumns | null;
    this.lastPollAt = performance.now();
    if (cols?.tags?.length) await tx.send(this.toDataFrames(cols));
    else tx.heartbeat();
  }

  private toDataFrames(c: FrameColumns): DataFrame[] {
    const now = Date.now() * 1000;
    const n = c.tags.length;
    const out: DataFrame[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const ts = c.ts ? c.ts[i]! : NaN;
      out[i] = { kind: "data", tag: c.tags[i]!, value: c.values[i] ?? null, ts: Number.isNaN(ts) ? now : ts, quality: c.quality ? c.quality[i]! : 0, source: this.id };
    }
    return out;
  }

  async write(cmd: CmdFrame, tag: Variable): Promise<WriteResult> {
    const proc = this.proc;
    if (!proc?.has("write")) return { ok: false, code: "not_supported", error: `plugin '${this.pluginName}' does not write` };
    const r = (await proc.call("write", [{ id: cmd.id, tag: tag.tag, value: cmd.value, expiresAt: cmd.expiresAt }])) as PluginWriteResult;
    return { ok: r.ok === true, ...(r.code ? { code: r.code } : {}), ...(r.error ? { error: String(r.error) } : {}) };
  }

  /**
   * Replaces the running version with `next`: the poll loop is held after its current poll, the new
   * process is started, initialised, connected and polled once; only then is the old one stopped.
   * If any of that fails the new process is killed and the old one resumes (the rollback); throws.
   */
  async swap(next: VerifiedPlugin): Promise<SwapOutcome> {
    const old = this.proc;
    if (!old?.alive || !this.sink) {
      // not running (backoff, fault): the next connect starts the new version
      return { gapMs: 0 };
    }
    const gate = deferred<void>();
    this.gate = gate;
    try {
      await this.idle;
      const held = this.lastPollAt;
      const proc = await this.start(next, this.endpointUrl ? parseScheme(this.endpointUrl) : undefined);
      try {
        await this.pollOnce(this.sink, proc);
      } catch (e) {
        proc.kill("first poll failed");
        throw e;
      }
      this.proc = proc;
      this.plugin = next;
      void this.stopProcess(old);
      return { gapMs: Math.round(this.lastPollAt - held) };
    } finally {
      this.gate = null;
      gate.resolve();
    }
  }

  private async stopProcess(proc: PluginProcess): Promise<void> {
    if (proc.alive && proc.has("shutdown")) await proc.call("shutdown", [], 2000).catch(() => undefined);
    proc.kill();
  }

  async shutdown(): Promise<void> {
    this.host.detach(this.pluginName, this);
    this.sink = null;
    const proc = this.proc;
    this.proc = null;
    if (proc) await this.stopProcess(proc);
  }
}

function parseScheme(url: string): { url: string; scheme: string } {
  return { url, scheme: url.slice(0, url.indexOf("://")) };
}
