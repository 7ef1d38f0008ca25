// The registry's decoders (PluginRegistry.decoder): a process per decoder plugin, started at the first
// batch; a JS decoder that kills its own process costs that batch only, the next batch gets a fresh
// process; repeated crashes back off (shown in /readyz), and calls while it is down fail at once.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import type { DriverFactory } from "../../../drivers/contract.ts";
import { DecoderUnavailable } from "../../../drivers/plugins/decoder.ts";
import { PluginCrashed } from "../../../drivers/plugins/host.ts";
import { PluginRegistry } from "../../../drivers/plugins/registry.ts";
import { pluginsService } from "../../../server/plugins-service.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { LENGTH_DECODER, newKey, writePlugin } from "./fixtures.ts";

const tmp = tempDir("plugins-decoder-");
const key = newKey("acme");
const text = new TextEncoder();
let registry: PluginRegistry;

beforeAll(async () => {
  writeFileSync(join(tmp.path, "authorized_keys"), `${key.publicLine}\n`);
  await writePlugin(join(tmp.path, "plugins"), { name: "dec", kind: "decoder", source: LENGTH_DECODER }, key);
  await writePlugin(join(tmp.path, "plugins"), { name: "drv", kind: "driver", source: "export default () => ({ poll: () => [] });\n" }, key);
  registry = new PluginRegistry({
    configDir: tmp.path,
    settings: { allowUnsigned: false, memoryMb: 768, callTimeoutMs: 2000 },
    factories: new Map<string, DriverFactory>(),
    appendEvent: () => undefined,
    restartBackoff: { initialMs: 400, maxMs: 400 },
  });
  await registry.scan();
});

afterAll(() => {
  registry.stop();
  tmp.cleanup();
});

describe("decoder plugins of the registry", () => {
  it("gives no decoder for an unknown name or a driver plugin, and starts none before the first batch", () => {
    expect(registry.decoder("nope")).toBeUndefined();
    expect(registry.decoder("drv")).toBeUndefined();
    expect(registry.decoder("dec")).toBeDefined();
    expect(registry.decoderStatus().dec).toMatchObject({ running: false, batches: 0 });
  });

  it("decodes a batch in the plugin's process, one frame list per payload", async () => {
    expect(await registry.decoder("dec")!.decode([text.encode("ab"), text.encode("abcd")])).toEqual([[{ tag: "len", value: 2 }], [{ tag: "len", value: 4 }]]);
    expect(registry.decoderStatus().dec).toMatchObject({ running: true, batches: 1, crashes: 0 });
  });

  it("fails a batch whose decode throws, keeping the process", async () => {
    const pid = registry.decoderStatus().dec!.pid;
    await expect(registry.decoder("dec")!.decode([text.encode("throw")])).rejects.toThrow("RangeError: bad telegram");
    expect(registry.decoderStatus().dec).toMatchObject({ running: true, pid, crashes: 0 });
  });

  it("starts a fresh process for the batch after a crash, at once", async () => {
    const dec = registry.decoder("dec")!;
    const pid = registry.decoderStatus().dec!.pid;
    await expect(dec.decode([text.encode("crash")])).rejects.toBeInstanceOf(PluginCrashed);
    expect(await dec.decode([text.encode("a")])).toEqual([[{ tag: "len", value: 1 }]]);
    expect(registry.decoderStatus().dec).toMatchObject({ running: true, crashes: 1 });
    expect(registry.decoderStatus().dec!.pid).not.toBe(pid);
  });

  it("backs off after crashes in a row, failing calls at once meanwhile, then starts a fresh process", async () => {
    const dec = registry.decoder("dec")!;
    await expect(dec.decode([text.encode("crash")])).rejects.toBeInstanceOf(PluginCrashed);
    await expect(dec.decode([text.encode("crash")])).rejects.toBeInstanceOf(PluginCrashed);
    const t = performance.now();
    await expect(dec.decode([text.encode("a")])).rejects.toBeInstanceOf(DecoderUnavailable);
    // at once: the call neither waited for the backoff (still running after it failed) nor started a
    // process (a time bound said so too, but a loaded machine can hold any process for 50 ms)
    expect(registry.decoderStatus().dec).toEqual({ running: false, version: "1.0.0", batches: expect.any(Number), crashes: expect.any(Number), backoffMs: expect.any(Number), lastError: expect.stringContaining("exit code 3") });
    expect(registry.decoderStatus().dec!.backoffMs).toBeGreaterThan(0);
    // /readyz says so: the plugins component is degraded with the reason
    const ready = pluginsService(registry, false, pino({ level: "silent" })).status!();
    expect(ready.state).toBe("degraded");
    expect(ready.reasons).toEqual([expect.stringMatching(/^decoder 'dec' restarts in \d+ ms after repeated crashes \(its messages are refused meanwhile\): plugin 'dec': process ended: exit code 3/)]);
    await waitFor(async () => (await dec.decode([text.encode("a")]).catch(() => null)) !== null, "a process after the backoff", 10_000);
    expect(performance.now() - t).toBeGreaterThanOrEqual(350);
  }, 20_000);
});
