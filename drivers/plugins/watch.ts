// The plugins folder watched: a folder that appears is loaded, a folder whose plugin.toml changed is
// swapped in (with rollback: a version that fails leaves the running one in place), a folder removed
// is unloaded if no driver runs it. Events are debounced (an editor or `cp -r` writes many files);
// the manifest's bytes decide whether anything changed, so the registry's own moves are no-ops: the
// registry's install does nothing for a folder in place whose manifest is the one running (an upload
// moved into place changes the folder's digest here, but not what runs), and its unload of a folder seen
// missing does nothing if the folder is back when the unload runs (an install moves it out, then in).
import { createHash } from "node:crypto";
import { existsSync, watch, type FSWatcher } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { MANIFEST_FILE } from "./manifest.ts";
import type { PluginRegistry } from "./registry.ts";

export interface PluginWatchOptions {
  debounceMs?: number;
  /** a load, swap or unload that failed (it is also an event and in the plugin's status) */
  onError?(name: string, err: unknown): void;
}

export class PluginFolderWatcher {
  private watcher: FSWatcher | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> = Promise.resolve();
  /** manifest digest per folder, as last seen */
  private readonly seen = new Map<string, string>();

  constructor(
    private readonly registry: PluginRegistry,
    private readonly opts: PluginWatchOptions = {},
  ) {}

  async start(): Promise<void> {
    if (!existsSync(this.registry.pluginsDir)) return;
    for (const [name, digest] of await this.digests()) this.seen.set(name, digest);
    this.watcher = watch(this.registry.pluginsDir, { recursive: true }, (_ev, file) => {
      if (file && String(file).startsWith(".")) return; // .trash, .staging: the registry's own
      clearTimeout(this.timer);
      this.timer = setTimeout(() => (this.running = this.running.then(() => this.sync())), this.opts.debounceMs ?? 300);
    });
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = null;
    await this.running;
  }

  /** Folder name -> SHA-256 of its plugin.toml, for every plugin folder with one. */
  private async digests(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const d of await readdir(this.registry.pluginsDir, { withFileTypes: true }).catch(() => [])) {
      if (!d.isDirectory() || d.name.startsWith(".")) continue;
      const bytes = await readFile(join(this.registry.pluginsDir, d.name, MANIFEST_FILE)).catch(() => null);
      if (bytes) out.set(d.name, createHash("sha256").update(bytes).digest("hex"));
    }
    return out;
  }

  private async sync(): Promise<void> {
    const now = await this.digests();
    for (const [name, digest] of now) {
      if (this.seen.get(name) === digest) continue;
      this.seen.set(name, digest);
      await this.registry.install(join(this.registry.pluginsDir, name)).catch((e) => this.opts.onError?.(name, e));
    }
    for (const name of [...this.seen.keys()]) {
      if (now.has(name)) continue;
      this.seen.delete(name);
      if (this.registry.statusOf(name)) await this.registry.unload(name, { ifFolderGone: true }).catch((e) => this.opts.onError?.(name, e));
    }
  }
}
