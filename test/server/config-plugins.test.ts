// The config check knows plugin drivers: `plugin: <name>` passes when the plugin folder passes the trust
// check, and is one problem at drivers[i].plugin naming what failed otherwise.
import { afterAll, describe, expect, it } from "bun:test";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkConfig } from "../../server/config-check.ts";
import { tempDir, writeConfig } from "../helpers/index.ts";
import { counterSource, newKey, writePlugin } from "../drivers/plugins/fixtures.ts";

const tmp = tempDir("config-plugins-");
afterAll(() => tmp.cleanup());
const key = newKey("acme");

async function configWith(name: string, endpoints: string[] = [], endpoint = false): Promise<string> {
  const dir = join(tmp.path, name);
  mkdirSync(dir, { recursive: true });
  writeConfig(dir, {
    "gateway.yml": `dataDir: ${join(dir, "data")}\n`,
    "endpoints.yml": "endpoints:\n  plc: { url: tcp://127.0.0.1:5020 }\n",
    "drivers.yml": `drivers:\n  - id: p1\n    plugin: counter\n${endpoint ? "    endpoint: plc\n" : ""}    config: { intervalMs: 100 }\n`,
    "variables.yml": "tags:\n  - { tag: p1/a, driver: p1, type: float64 }\n",
  });
  writeFileSync(join(dir, "authorized_keys"), `${key.publicLine}\n`);
  await writePlugin(join(dir, "plugins"), { name: "counter", endpoints, source: counterSource() }, key);
  return dir;
}

describe("config check of plugin drivers", () => {
  it("accepts a driver naming a signed plugin", async () => {
    const { config, problems } = await checkConfig(await configWith("ok"));
    expect(problems.map((p) => p.message)).toEqual([]);
    expect(config?.drivers[0]).toMatchObject({ id: "p1", type: "plugin", plugin: "counter" });
  });

  it("names the failed trust check of the plugin at drivers[0].plugin", async () => {
    const dir = await configWith("tampered");
    appendFileSync(join(dir, "plugins", "counter", "index.js"), "\n// edited\n");
    const { problems } = await checkConfig(dir);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe("drivers[0].plugin");
    expect(problems[0]!.detail).toContain("refused: checksum: index.js");
  });

  it("refuses an endpoint whose scheme the plugin did not request", async () => {
    const { problems } = await checkConfig(await configWith("capability", [], true));
    expect(problems[0]!.detail).toContain("capability: plugin 'counter' requests endpoints none");
    expect((await checkConfig(await configWith("granted", ["tcp"], true))).problems).toEqual([]);
  });
});

describe("config check of decoder plugins named by mappings", () => {
  async function configWithDecoder(name: string, kind: "decoder" | "driver", decoder: string): Promise<string> {
    const dir = join(tmp.path, name);
    mkdirSync(dir, { recursive: true });
    writeConfig(dir, {
      "gateway.yml": `dataDir: ${join(dir, "data")}\n`,
      "drivers.yml": `drivers:\n  - id: src\n    type: mqtt\n    config: { url: "mqtt://127.0.0.1:1", mappings: [{ topic: "m/+", tag: "m/{1}/{tag}", decoder: ${decoder} }] }\n`,
      "variables.yml": "tags:\n  - { tag: m/a/x, driver: src, type: float64 }\n",
    });
    writeFileSync(join(dir, "authorized_keys"), `${key.publicLine}\n`);
    await writePlugin(join(dir, "plugins"), { name: "dec", kind, source: "export default () => ({ decode: (b) => b.map(() => []) });\n" }, key);
    return dir;
  }

  it("accepts a mapping naming a signed decoder plugin", async () => {
    expect((await checkConfig(await configWithDecoder("dec-ok", "decoder", "dec"))).problems.map((p) => p.message)).toEqual([]);
  });

  it("names a missing decoder plugin, and a plugin that is not a decoder, at the mapping's decoder field", async () => {
    const missing = (await checkConfig(await configWithDecoder("dec-missing", "decoder", "nope"))).problems;
    expect(missing).toHaveLength(1);
    expect(missing[0]!.path).toBe("drivers[0].config.mappings[0].decoder");
    const driver = (await checkConfig(await configWithDecoder("dec-driver", "driver", "dec"))).problems;
    expect(driver[0]!.path).toBe("drivers[0].config.mappings[0].decoder");
    expect(driver[0]!.detail).toContain("plugin 'dec' is a driver, not a decoder");
  });
});
