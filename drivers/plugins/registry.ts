// The plugins of a gateway: the folders under <config>/plugins, each verified (trust.ts) before it is
// offered to the driver manager as the driver type `plugin:<name>`; install (a new plugin or a new
// version: swap with rollback), unload, status. Every load, refusal, swap and unload is an event frame.
// Replaced and unloaded folders are kept in <plugins>/.trash/<timestamp>/<name>. Decoder plugins are
// called through decoder(name) (decoder.ts: a process per decoder, started at its first batch); a swap
// or an unload of a decoder ends its process, so the next batch runs the version in place.
import { existsSync } from "node:fs";
import { cp, mkdir, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { EventFrame } from "../../schemas/index.ts";
import type { DecoderStatus, PluginStatus } from "../../schemas/plugins.ts";
import type { DriverFactory } from "../contract.ts";
import type { PayloadDecoder } from "../mqtt/decoder.ts";
import { PluginDecoder, startDecoderProcess } from "./decoder.ts";
import { PluginDriver, type PluginDriverHost } from "./driver.ts";
import { PluginRefused } from "./manifest.ts";
import { readAuthorizedKeys, verifyPlugin, type VerifiedPlugin } from "./trust.ts";

export const PLUGIN_TYPE_PREFIX = "plugin:";
export const TRASH_DIR = ".trash";
export const STAGING_DIR = ".staging";

/** The factory key of a driver entry: `plugin:<name>` for `type: plugin` with `plugin: <name>`. */
export function driverType(entry: { type: string; plugin?: string | undefined }): string {
  return entry.type === "plugin" && entry.plugin ? `${PLUGIN_TYPE_PREFIX}${entry.plugin}` : entry.type;
}

export class PluginOperationError extends Error {
  override name = "PluginOperationError";
  constructor(
    readonly plugin: string,
    message: string,
    /** HTTP-ish status for the API: 404 unknown, 409 in use / conflict, 422 refused or failed */
    readonly status: 404 | 409 | 422,
  ) {
    super(`plugin '${plugin}': ${message}`);
  }
}

export interface PluginSettings {
  allowUnsigned: boolean;
  memoryMb: number;
  callTimeoutMs: number;
}

export interface PluginRegistryOptions {
  configDir: string;
  /** default <configDir>/plugins */
  pluginsDir?: string;
  settings: PluginSettings;
  /** the driver manager's factory map: the registry adds and removes `plugin:<name>` entries */
  factories: Map<string, DriverFactory>;
  appendEvent(frame: EventFrame): void;
  log?(plugin: string, level: string, msg: string): void;
  /** restart backoff of a decoder process after repeated crashes (default 1 s doubling to 60 s, as drivers) */
  restartBackoff?: { initialMs: number; maxMs: number };
}

interface Entry {
  plugin?: VerifiedPlugin;
  refusal?: PluginRefused;
  drivers: Set<PluginDriver>;
  loadedAt?: number;
  lastSwap?: PluginStatus["lastSwap"];
  state: PluginStatus["state"];
}

export class PluginRegistry implements PluginDriverHost {
  readonly pluginsDir: string;
  private readonly entries = new Map<string, Entry>();
  /** decoders asked for by name; kept across unload and reload, since a driver holds on to its decoder */
  private readonly decoders = new Map<string, PluginDecoder>();
  /** one operation at a time: a swap, an install and an unload must not interleave */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: PluginRegistryOptions) {
    this.pluginsDir = opts.pluginsDir ?? join(opts.configDir, "plugins");
  }

  /** Verifies every plugin folder (not the dot folders); refusals are recorded, not thrown. */
  async scan(): Promise<void> {
    if (!existsSync(this.pluginsDir)) return;
    for (const d of await readdir(this.pluginsDir, { withFileTypes: true })) {
      if (d.isDirectory() && !d.name.startsWith(".")) await this.loadFolder(join(this.pluginsDir, d.name), d.name);
    }
  }

  private entry(name: string): Entry {
    let e = this.entries.get(name);
    if (!e) this.entries.set(name, (e = { drivers: new Set(), state: "refused" }));
    return e;
  }

  private async verify(dir: string): Promise<VerifiedPlugin> {
    const keys = await readAuthorizedKeys(this.opts.configDir);
    try {
      return await verifyPlugin(dir, { keys, allowUnsigned: this.opts.settings.allowUnsigned });
    } catch (e) {
      if (e instanceof PluginRefused) this.refused(e);
      throw e;
    }
  }

  private async loadFolder(dir: string, folder: string): Promise<VerifiedPlugin | undefined> {
    try {
      const p = await this.verify(dir);
      if (p.manifest.name !== folder) throw this.refusedNow(new PluginRefused(folder, "manifest", `the folder '${folder}' holds plugin '${p.manifest.name}' (the folder must be named after the plugin)`));
      this.accept(p);
      return p;
    } catch (e) {
      if (!(e instanceof PluginRefused)) throw e;
      return undefined;
    }
  }

  private refusedNow(e: PluginRefused): PluginRefused {
    this.refused(e);
    return e;
  }

  private accept(p: VerifiedPlugin): void {
    const e = this.entry(p.manifest.name);
    e.plugin = p;
    delete e.refusal;
    e.state = "loaded";
    e.loadedAt = Date.now();
    if (p.manifest.kind === "driver") this.opts.factories.set(`${PLUGIN_TYPE_PREFIX}${p.manifest.name}`, () => new PluginDriver(p.manifest.name, this));
    this.event("plugin.loaded", { plugin: p.manifest.name, version: p.manifest.version, kind: p.manifest.kind, signer: p.signer ?? null, unsigned: p.unsigned });
  }

  /**
   * The decoder plugin `name` (MQTT source mappings with `decoder:`), or undefined when no decoder of
   * that name is loaded. Its process starts at the first batch.
   */
  decoder(name: string): PayloadDecoder | undefined {
    if (this.entries.get(name)?.plugin?.manifest.kind !== "decoder") return undefined;
    let d = this.decoders.get(name);
    if (!d) this.decoders.set(name, (d = new PluginDecoder(name, this, this.opts.restartBackoff ?? { initialMs: 1000, maxMs: 60_000 })));
    return d;
  }

  /** The decoders' processes by plugin name (for status). */
  decoderStatus(): Record<string, DecoderStatus> {
    return Object.fromEntries([...this.decoders].map(([n, d]) => [n, d.status()]));
  }

  /** Ends every decoder process (the gateway stops, after its drivers). */
  stop(): void {
    for (const d of this.decoders.values()) d.restart("gateway stopping");
  }

  // ---- PluginDriverHost ----------------------------------------------------------------------------
  current(name: string): VerifiedPlugin | undefined {
    return this.entries.get(name)?.plugin;
  }

  attach(name: string, d: PluginDriver): void {
    this.entry(name).drivers.add(d);
  }

  detach(name: string, d: PluginDriver): void {
    this.entries.get(name)?.drivers.delete(d);
  }

  refused(e: PluginRefused): void {
    const entry = this.entry(e.plugin);
    entry.refusal = e;
    if (!entry.plugin) entry.state = "refused";
    this.event("plugin.refused", e.toRefusal());
  }

  processOptions() {
    return { memoryMb: this.opts.settings.memoryMb, callTimeoutMs: this.opts.settings.callTimeoutMs };
  }

  log(plugin: string, level: string, msg: string): void {
    this.opts.log?.(plugin, level, msg);
  }

  // ---- operations ----------------------------------------------------------------------------------
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Installs the plugin folder `src` (a staged upload or any folder): verified first; a new plugin is
   * moved into place and loaded; a new version of a loaded one is swapped in on every driver running it,
   * and rolled back if any of them fails to start it (the folder in place stays the old one).
   */
  install(src: string): Promise<PluginStatus> {
    return this.serial(async () => {
      const next = await this.verify(src);
      const name = next.manifest.name;
      const e = this.entries.get(name);
      const dest = join(this.pluginsDir, name);
      // the folder in place holds the version running: the folder watcher seeing this registry's own
      // move of an upload into place (a second swap to the same version restarted the drivers, and a
      // listing in between showed the plugin "swapping")
      if (src === dest && e?.plugin?.manifestSha256 === next.manifestSha256) return this.statusOf(name)!;
      if (e?.plugin) await this.swapDrivers(e, next);
      if (src !== dest) {
        if (existsSync(dest)) await this.toTrash(dest, name);
        await mkdir(this.pluginsDir, { recursive: true });
        await rename(src, dest);
      }
      const installed = { ...next, dir: dest };
      if (e?.plugin) {
        e.plugin = installed;
        e.state = "loaded";
        e.loadedAt = Date.now();
        delete e.refusal; // an earlier refused upload is not what runs now (accept() does the same)
      } else this.accept(installed);
      this.decoders.get(name)?.restart(`replaced by version ${next.manifest.version}`);
      return this.statusOf(name)!;
    });
  }

  private async swapDrivers(e: Entry, next: VerifiedPlugin): Promise<void> {
    const prev = e.plugin!; // only called for a loaded plugin
    const name = prev.manifest.name;
    const swap = { from: prev.manifest.version, to: next.manifest.version };
    e.state = "swapping";
    const done: PluginDriver[] = [];
    let gapMs = 0;
    try {
      // a decoder's new version must start before the old one's process is ended (the next batch starts it)
      if (next.manifest.kind === "decoder") (await startDecoderProcess(next, this)).kill("trial of a swap");
      for (const d of e.drivers) {
        gapMs = Math.max(gapMs, (await d.swap(next)).gapMs);
        done.push(d);
      }
    } catch (err) {
      // roll back the drivers already on the new version; the failing one kept the old process
      for (const d of done) await d.swap(prev).catch(() => undefined);
      const error = (err as Error).message;
      e.state = "loaded";
      e.lastSwap = { ...swap, ok: false, error, at: Date.now() };
      this.event("plugin.swap_failed", { plugin: name, ...swap, error, rolledBack: true });
      throw new PluginOperationError(name, `swap ${swap.from} -> ${swap.to} failed, rolled back to ${swap.from}: ${error}`, 422);
    }
    e.lastSwap = { ...swap, ok: true, gapMs, at: Date.now() };
    this.event("plugin.swapped", { plugin: name, ...swap, drivers: [...e.drivers].map((d) => d.driverId), gapMs });
  }

  /**
   * Swaps back to the version most recently replaced (the newest copy in .trash): the same checks
   * and the same swap as an install, so a rollback that fails leaves the current version running.
   */
  async rollback(name: string): Promise<PluginStatus> {
    const trash = join(this.pluginsDir, TRASH_DIR);
    const stamps = existsSync(trash) ? (await readdir(trash)).sort().reverse() : [];
    const stamp = stamps.find((s) => existsSync(join(trash, s, name, "plugin.toml")));
    if (!stamp) throw new PluginOperationError(name, "no earlier version in .trash to roll back to", 404);
    const staged = await this.stagingDir();
    await cp(join(trash, stamp, name), staged, { recursive: true });
    try {
      return await this.install(staged);
    } finally {
      await this.discard(staged);
    }
  }

  /**
   * Unloads a plugin no driver runs; its folder goes to the trash. `ifFolderGone` (the folder watcher):
   * only if its folder is still gone when the unload runs. An install moves the folder out and the new
   * version in; a watcher pass that looked in between asks for an unload that must not remove the new one.
   */
  unload(name: string, opts: { ifFolderGone?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      if (opts.ifFolderGone && existsSync(join(this.pluginsDir, name))) return;
      const e = this.entries.get(name);
      if (!e) throw new PluginOperationError(name, "no such plugin", 404);
      if (e.drivers.size) throw new PluginOperationError(name, `in use by driver(s) ${[...e.drivers].map((d) => d.driverId).join(", ")}: remove them from drivers.yml first`, 409);
      const dir = join(this.pluginsDir, name);
      if (existsSync(dir)) await this.toTrash(dir, name);
      this.entries.delete(name);
      this.opts.factories.delete(`${PLUGIN_TYPE_PREFIX}${name}`);
      this.decoders.get(name)?.restart("unloaded");
      this.event("plugin.unloaded", { plugin: name, version: e.plugin?.manifest.version ?? null });
    });
  }

  /** A new staging folder for an upload (inside the plugins dir: the final rename stays on one file system). */
  async stagingDir(): Promise<string> {
    const dir = join(this.pluginsDir, STAGING_DIR, `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async discard(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }

  private async toTrash(dir: string, name: string): Promise<void> {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const dest = join(this.pluginsDir, TRASH_DIR, stamp);
    await mkdir(dest, { recursive: true });
    await rename(dir, join(dest, name));
  }

  private event(type: string, data: Record<string, unknown>): void {
    this.opts.appendEvent({ kind: "event", type, source: "plugins", ts: Date.now() * 1000, data });
  }

  statusOf(name: string): PluginStatus | undefined {
    const e = this.entries.get(name);
    if (!e) return undefined;
    const m = e.plugin?.manifest;
    return {
      name,
      state: e.state,
      unsigned: e.plugin?.unsigned ?? false,
      drivers: [...e.drivers].map((d) => d.driverId),
      ...(m ? { kind: m.kind, version: m.version, api: { ...m.api } } : {}),
      ...(e.plugin?.signer ? { signer: e.plugin.signer } : {}),
      ...(e.refusal ? { refusal: e.refusal.toRefusal() } : {}),
      ...(e.loadedAt ? { loadedAt: e.loadedAt } : {}),
      ...(e.lastSwap ? { lastSwap: e.lastSwap } : {}),
      // a decoder no batch has asked for yet has no process (the first batch starts it)
      ...(m?.kind === "decoder" ? { decoder: this.decoders.get(name)?.status() ?? { running: false, batches: 0, crashes: 0 } } : {}),
    };
  }

  status(): PluginStatus[] {
    return [...this.entries.keys()].sort().map((n) => this.statusOf(n)!);
  }
}
