// Hot swap of a plugin driver: the new version is started beside the old one and takes over only once
// it has initialised, connected and polled; a version that fails leaves the old one running.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, type DriverFactory } from "../../../drivers/index.ts";
import { PluginOperationError, PluginRegistry } from "../../../drivers/plugins/registry.ts";
import { PluginFolderWatcher } from "../../../drivers/plugins/watch.ts";
import { isBad, Variable as VariableSchema, type EventFrame, type Variable } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { counterSource, LENGTH_DECODER, newKey, writePlugin } from "./fixtures.ts";

const key = newKey("acme");
let tmp: ReturnType<typeof tempDir>;
let log: EventLog;
let mgr: DriverManager;
let registry: PluginRegistry;

/** version 1 counts from 1, version 2 from 1001: who produced a reading shows in its value */
const counterFrom = (base: number, extra = "") => counterSource(`poll() { n++; return tags.map((t) => ({ tag: t.tag, value: ${base} + n })); }, ${extra}`);

beforeEach(async () => {
  tmp = tempDir("plugins-swap-");
  writeFileSync(join(tmp.path, "authorized_keys"), `${key.publicLine}\n`);
  log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), maxDelayMs: 2 });
  await writePlugin(join(tmp.path, "plugins"), { name: "counter", version: "1.0.0", source: counterFrom(0) }, key);
  const factories = new Map<string, DriverFactory>(builtinDrivers);
  mgr = new DriverManager({ log, factories, settings: { backoffBaseMs: 50, backoffMaxMs: 200, watchdogMs: 0 } });
  registry = new PluginRegistry({ configDir: tmp.path, settings: { allowUnsigned: false, memoryMb: 640, callTimeoutMs: 1000 }, factories, appendEvent: (f) => mgr.appendEvent(f) });
  await registry.scan();
  const tag = Value.Default(VariableSchema, { tag: "plug/a", driver: "plug", type: "float64" }) as Variable;
  mgr.add({ id: "plug", type: "plugin", plugin: "counter", enabled: true, config: { intervalMs: 10 } }, undefined, [tag]);
  await waitFor(async () => (await readings()).length >= 3, "readings from version 1");
});

afterEach(async () => {
  await mgr.stop();
  await log.close();
  tmp.cleanup();
});

async function readings(): Promise<{ value: number; quality: number }[]> {
  const out: { value: number; quality: number }[] = [];
  for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.source === "plug") out.push({ value: f.value as number, quality: f.quality });
  return out;
}

async function events(type: string): Promise<EventFrame[]> {
  const out: EventFrame[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === type) out.push(f);
  return out;
}

describe("plugin hot swap", () => {
  it("loads a plugin folder that appears and swaps in a version written over a running one, from the folder watcher", async () => {
    const watcher = new PluginFolderWatcher(registry, { debounceMs: 50 });
    await watcher.start();
    try {
      await writePlugin(join(tmp.path, "plugins"), { name: "other", version: "0.1.0", source: counterFrom(0) }, key);
      await waitFor(() => registry.statusOf("other")?.state === "loaded", "the new folder loaded");
      await writePlugin(join(tmp.path, "plugins"), { name: "counter", version: "2.0.0", source: counterFrom(1000) }, key);
      await waitFor(() => registry.statusOf("counter")?.version === "2.0.0", "version 2 swapped in");
      await waitFor(async () => (await readings()).some((r) => r.value > 1000), "readings from version 2");
      expect(registry.statusOf("counter")?.lastSwap).toMatchObject({ from: "1.0.0", to: "2.0.0", ok: true });
    } finally {
      await watcher.stop();
    }
  });

  it("does not swap again, from the folder watcher, a version the registry installed itself (an upload)", async () => {
    const watcher = new PluginFolderWatcher(registry, { debounceMs: 50 });
    await watcher.start();
    try {
      const staged = await writePlugin(join(tmp.path, "upload"), { name: "counter", version: "2.0.0", source: counterFrom(1000) }, key);
      await registry.install(staged);
      // a folder written after the install: once the watcher loaded it, it has seen the install's moves too
      await writePlugin(join(tmp.path, "plugins"), { name: "other", version: "0.1.0", source: counterFrom(0) }, key);
      await waitFor(() => registry.statusOf("other")?.state === "loaded", "the watcher's pass after the install");
    } finally {
      await watcher.stop(); // waits for the watcher's pass to end
    }
    expect(registry.statusOf("counter")).toMatchObject({ state: "loaded", version: "2.0.0", lastSwap: { from: "1.0.0", to: "2.0.0", ok: true } });
    await waitFor(async () => (await events("plugin.loaded")).some((e) => e.data?.plugin === "other"), "the watcher's load in the log");
    expect((await events("plugin.swapped")).map((e) => `${e.data?.from} -> ${e.data?.to}`)).toEqual(["1.0.0 -> 2.0.0"]);
  });

  it("keeps a plugin the folder watcher saw missing while an install moved its folder out and the new one in", async () => {
    // a decoder: no driver runs it, so an unload of it is not refused as in use
    await registry.install(await writePlugin(join(tmp.path, "up-dec1"), { name: "dec", kind: "decoder", version: "1.0.0", source: LENGTH_DECODER }, key));
    const watcher = new PluginFolderWatcher(registry, { debounceMs: 20 });
    await watcher.start();
    const unloads: string[] = [];
    const unload = registry.unload.bind(registry);
    registry.unload = (name, ...rest) => (unloads.push(name), unload(name, ...rest));
    // the install holds its folder out of place (in .trash, the new version not yet moved in) until the
    // watcher has seen it missing and asked for an unload: the window a watcher pass can fall into
    const internals = registry as unknown as { toTrash(dir: string, name: string): Promise<void> };
    const toTrash = internals.toTrash.bind(registry);
    internals.toTrash = async (dir, name) => {
      await toTrash(dir, name);
      if (name === "dec") await waitFor(() => unloads.includes("dec"), "the watcher's unload of the missing folder");
    };
    try {
      await registry.install(await writePlugin(join(tmp.path, "up-dec2"), { name: "dec", kind: "decoder", version: "2.0.0", source: LENGTH_DECODER }, key));
    } finally {
      await watcher.stop(); // waits for the watcher's pass, and so for the unload it asked
    }
    expect(unloads).toEqual(["dec"]);
    expect(registry.statusOf("dec")).toMatchObject({ state: "loaded", version: "2.0.0" });
    expect(existsSync(join(tmp.path, "plugins", "dec", "plugin.toml"))).toBe(true);
  });

  it("lists a refused upload of a loaded plugin until a version is installed", async () => {
    const tampered = await writePlugin(join(tmp.path, "up-tampered"), { name: "counter", version: "2.0.0", source: counterFrom(1000) }, key);
    writeFileSync(join(tampered, "index.js"), counterFrom(666));
    await expect(registry.install(tampered)).rejects.toThrow("checksum");
    expect(registry.statusOf("counter")).toMatchObject({ state: "loaded", version: "1.0.0", refusal: { reason: "checksum" } });
    const good = await writePlugin(join(tmp.path, "up-good"), { name: "counter", version: "2.0.0", source: counterFrom(1000) }, key);
    await registry.install(good);
    expect(registry.statusOf("counter")).toMatchObject({ state: "loaded", version: "2.0.0" });
    expect(registry.statusOf("counter")?.refusal).toBeUndefined();
  });

  it("swaps version 1 for version 2 without a Bad reading, reports 2.0.0 active and the polling gap, and keeps the old files in .trash", async () => {
    const staged = await writePlugin(join(tmp.path, "upload"), { name: "counter", version: "2.0.0", source: counterFrom(1000) }, key);
    const status = await registry.install(staged);
    expect(status).toMatchObject({ name: "counter", state: "loaded", version: "2.0.0", lastSwap: { from: "1.0.0", to: "2.0.0", ok: true } });
    expect(status.lastSwap!.gapMs).toBeGreaterThanOrEqual(0);
    await waitFor(async () => (await readings()).some((r) => r.value > 1001), "readings from version 2");
    const all = await readings();
    expect(all.some(isBadReading)).toBe(false);
    // every reading of version 1 came before the first of version 2: one driver, one order
    const firstV2 = all.findIndex((r) => r.value > 1000);
    expect(all.slice(firstV2).every((r) => r.value > 1000)).toBe(true);
    expect((await waitFor(() => events("plugin.swapped").then((e) => e[0]), "plugin.swapped event")).data).toMatchObject({ plugin: "counter", from: "1.0.0", to: "2.0.0", drivers: ["plug"] });
    const trash = join(tmp.path, "plugins", ".trash");
    expect(readdirSync(trash).some((stamp) => existsSync(join(trash, stamp, "counter", "plugin.toml")))).toBe(true);
  });

  it("rolls back to version 1 when version 3 fails to initialise, and says why", async () => {
    const staged = await writePlugin(join(tmp.path, "upload"), { name: "counter", version: "3.0.0", source: counterFrom(3000, `init() { throw new Error("v3 cannot parse its config"); },`) }, key);
    const err = await registry.install(staged).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PluginOperationError);
    expect((err as Error).message).toContain("rolled back to 1.0.0");
    expect((err as Error).message).toContain("v3 cannot parse its config");
    expect(registry.statusOf("counter")).toMatchObject({ version: "1.0.0", state: "loaded", lastSwap: { from: "1.0.0", to: "3.0.0", ok: false } });
    const before = (await readings()).length;
    await waitFor(async () => (await readings()).length > before + 3, "version 1 polling on");
    const all = await readings();
    expect(all.every((r) => r.value < 1000 && r.quality === 0)).toBe(true);
    expect(await events("plugin.swap_failed")).toHaveLength(1);
    expect(existsSync(join(tmp.path, "plugins", "counter", "index.js"))).toBe(true);
  });
});

function isBadReading(r: { quality: number }): boolean {
  return isBad(r.quality);
}
