// edgectl keygen, plugin new, sign and verify: the scaffold signs and loads as it is, and produces readings.
import { afterAll, describe, expect, it } from "bun:test";
import { copyFileSync, cpSync, statSync } from "node:fs";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, type DriverFactory } from "../../drivers/index.ts";
import { PluginRegistry } from "../../drivers/plugins/registry.ts";
import { Variable } from "../../schemas/index.ts";
import { edgectl } from "../../server/edgectl.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

const tmp = tempDir("plugin-cmd-");
afterAll(() => tmp.cleanup());

/** Runs edgectl with stdout and stderr captured. */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (s: string) => out.push(s);
  console.error = (s: string) => err.push(s);
  try {
    return { code: await edgectl(argv), out: out.join("\n"), err: err.join("\n") };
  } finally {
    [console.log, console.error] = [log, error];
  }
}

describe("edgectl plugin commands", () => {
  it("makes a driver scaffold that signs, verifies and produces readings as it is", async () => {
    const keys = join(tmp.path, "keys");
    expect((await run("keygen", "--name", "alice", "--out", keys)).code).toBe(0);
    expect(statSync(join(keys, "alice.key")).mode & 0o777).toBe(0o600);
    expect((await run("plugin", "new", "driver", "wave", "--out", tmp.path)).code).toBe(0);
    const dir = join(tmp.path, "wave");
    expect((await run("sign", dir, "--key", join(keys, "alice.key"))).code).toBe(0);
    const config = join(tmp.path, "config");
    cpSync(dir, join(config, "plugins", "wave"), { recursive: true });
    copyFileSync(join(keys, "alice.pub"), join(config, "authorized_keys"));
    const v = await run("verify", dir, "--config", config);
    expect(v).toMatchObject({ code: 0 });
    expect(v.out).toContain("ok: wave 0.1.0 (driver, api 1..1) signed by alice");

    const log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), maxDelayMs: 2 });
    const factories = new Map<string, DriverFactory>(builtinDrivers);
    const mgr = new DriverManager({ log, factories, settings: { watchdogMs: 0 } });
    try {
      const registry = new PluginRegistry({ configDir: config, settings: { allowUnsigned: false, memoryMb: 768, callTimeoutMs: 2000 }, factories, appendEvent: (f) => mgr.appendEvent(f) });
      await registry.scan();
      mgr.add({ id: "wave1", type: "plugin", plugin: "wave", enabled: true, config: { intervalMs: 10, amplitude: 5 } }, undefined, [Value.Default(Variable, { tag: "wave/a", driver: "wave1", type: "float64" }) as Variable]);
      const reading = await waitFor(() => log.latest().get("wave/a"), "a reading of the scaffold driver");
      expect(reading.quality).toBe(0);
      expect(Math.abs(reading.value as number)).toBeLessThanOrEqual(5);
    } finally {
      await mgr.stop();
      await log.close();
    }
  }, 20_000);

  it("says what failed when verify refuses a folder", async () => {
    expect((await run("plugin", "new", "decoder", "dec", "--out", tmp.path)).code).toBe(0);
    const v = await run("verify", join(tmp.path, "dec"), "--config", tmp.path);
    expect(v.code).toBe(1);
    expect(v.err).toContain("refused: signature: plugin.sig is missing");
  });
});
