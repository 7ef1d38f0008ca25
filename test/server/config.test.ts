// Loading a config directory: malformed files are refused with the file, the path inside it and what
// was expected; defaults are applied; the gateway process refuses a bad config with that message.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join, resolve } from "node:path";
import { ConfigError } from "../../schemas/index.ts";
import { loadConfig } from "../../server/config.ts";
import { tempDir, writeConfig } from "../helpers/index.ts";

const good = {
  "endpoints.yml": `endpoints:\n  plc1: { url: "tcp://127.0.0.1:502" }\n`,
  "drivers.yml": `drivers:\n  - id: plc1\n    type: simulator\n    endpoint: plc1\n`,
  "variables.yml": `tags:\n  - { tag: a/temp, driver: plc1, type: float64 }\n  - { tag: a/count, driver: plc1, type: int32 }\n`,
};

let dir: ReturnType<typeof tempDir>;
let cfg: string;
beforeEach(() => {
  dir = tempDir();
  cfg = join(dir.path, "config");
});
afterEach(() => dir.cleanup());

/** Loads `files` over the good config and returns the ConfigError it throws. */
function refusal(files: Record<string, string | null>): ConfigError {
  const all: Record<string, string> = {};
  for (const [name, text] of Object.entries({ ...good, ...files })) if (text !== null) all[name] = text;
  writeConfig(cfg, all);
  try {
    loadConfig(cfg);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("the config was accepted");
}

describe("config loading", () => {
  it("applies the schema defaults to a minimal config", () => {
    writeConfig(cfg, good);
    const c = loadConfig(cfg);
    expect(c.gateway.http).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(c.gateway.opcua).toMatchObject({ host: "127.0.0.1", port: 4840 });
    expect(c.gateway.modbusSlave).toMatchObject({ host: "127.0.0.1", port: 5020 });
    expect(c.gateway.metrics).toEqual({ tagLabels: false });
    expect(c.gateway.demo).toEqual({ enabled: false, port: 5021 });
    expect(c.gateway.dataDir).toBe(resolve("./data"));
    expect(c.gateway.log).toEqual({ batchSize: 5000, maxDelayMs: 20, highWater: 100_000, lowWater: 50_000, tailFrames: 200_000 });
    expect(c.gateway.drivers).toEqual({ backoffBaseMs: 1000, backoffMaxMs: 60_000, faultAfterCrashes: 5, faultWindowMs: 300_000, watchdogMs: 30_000 });
    expect(c.endpoints.plc1).toEqual({ url: "tcp://127.0.0.1:502", timeoutMs: 1000 });
    expect(c.drivers[0]).toMatchObject({ id: "plc1", enabled: true, config: {} });
    expect(c.tags[0]).toMatchObject({ group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default" });
  });

  it("refuses invalid YAML with the line and column", () => {
    const e = refusal({ "drivers.yml": `drivers:\n  - id: plc1\n    type: [simulator\n` });
    expect(e.file).toBe(join(cfg, "drivers.yml"));
    expect(e.path).toMatch(/^line \d+, column \d+$/);
    expect(e.message).toContain("not valid YAML");
  });

  it("says the line and column of invalid YAML once, and what is wrong without a dangling colon", () => {
    // an unclosed flow map, as an edit of `{ id: u1, ... } }` that lost its last brace
    const e = refusal({ "drivers.yml": `drivers:
  - { id: plc1, type: simulator, config: { intervalMs: 200 }
  - { id: plc2, type: simulator }
` });
    expect(e.path).toMatch(/^line \d+, column \d+$/);
    expect(e.message.split(e.path).length - 1).toBe(1); // it read "... at line 3, column 3: not valid YAML: ... at line 3, column 3:"
    expect(e.message).not.toMatch(/:\s*$/);
  });

  it("refuses a wrong type naming the file and tags[1].type", () => {
    const e = refusal({ "variables.yml": `tags:\n  - { tag: a/temp, driver: plc1, type: float64 }\n  - { tag: a/count, driver: plc1, type: float }\n` });
    expect(e.file).toBe(join(cfg, "variables.yml"));
    expect(e.path).toBe("tags[1].type");
    expect(e.message).toBe(`${join(cfg, "variables.yml")} at tags[1].type: Expected one of "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"; got "float"`);
  });

  it("refuses a wrong value type with what was expected", () => {
    const e = refusal({ "gateway.yml": `log:\n  batchSize: many\n` });
    expect(e.message).toBe(`${join(cfg, "gateway.yml")} at log.batchSize: Expected integer; got "many"`);
  });

  it("refuses an unknown key", () => {
    const e = refusal({ "drivers.yml": `drivers:\n  - { id: plc1, type: simulator, endpoint: plc1, colour: red }\n` });
    expect(e.file).toBe(join(cfg, "drivers.yml"));
    expect(e.path).toBe("drivers[0].colour");
    expect(e.detail).toContain("Unexpected property");
  });

  it("refuses a tag referring to an unknown driver", () => {
    const e = refusal({ "variables.yml": `tags:\n  - { tag: a/temp, driver: plc1, type: float64 }\n  - { tag: b/x, driver: plc9, type: float64 }\n` });
    expect(e.message).toBe(`${join(cfg, "variables.yml")} at tags[1].driver: unknown driver 'plc9'`);
  });

  it("refuses a driver referring to an unknown endpoint, listing the defined ones", () => {
    const e = refusal({ "drivers.yml": `drivers:\n  - { id: plc1, type: simulator, endpoint: plc2 }\n` });
    expect(e.message).toBe(`${join(cfg, "drivers.yml")} at drivers[0].endpoint: unknown endpoint 'plc2' (defined: plc1)`);
  });

  it("refuses a duplicate tag, pointing at both", () => {
    const e = refusal({ "variables.yml": `tags:\n  - { tag: a/temp, driver: plc1, type: float64 }\n  - { tag: a/temp, driver: plc1, type: int16 }\n` });
    expect(e.message).toBe(`${join(cfg, "variables.yml")} at tags[1].tag: duplicate tag 'a/temp' (first at tags[0])`);
  });

  it("refuses a duplicate driver id", () => {
    const e = refusal({ "drivers.yml": `drivers:\n  - { id: plc1, type: simulator }\n  - { id: plc1, type: simulator }\n` });
    expect(e.message).toBe(`${join(cfg, "drivers.yml")} at drivers[1].id: duplicate driver id 'plc1'`);
  });

  it("refuses a config without drivers.yml", () => {
    const e = refusal({ "drivers.yml": null });
    expect(e.message).toBe(`${join(cfg, "drivers.yml")}: file not found`);
  });

  it("refuses a missing config directory", () => {
    expect(() => loadConfig(join(dir.path, "nowhere"))).toThrow(`${join(dir.path, "nowhere")}: config directory not found`);
  });

  it("refuses a port in the environment that is not a number", () => {
    writeConfig(cfg, good);
    const saved = process.env.EDGE_HTTP_PORT;
    process.env.EDGE_HTTP_PORT = "abc";
    try {
      expect(() => loadConfig(cfg)).toThrow("environment EDGE_HTTP_PORT: expected a port number 0..65535, got 'abc'");
      process.env.EDGE_HTTP_PORT = "9090";
      expect(loadConfig(cfg).gateway.http.port).toBe(9090);
    } finally {
      if (saved === undefined) delete process.env.EDGE_HTTP_PORT;
      else process.env.EDGE_HTTP_PORT = saved;
    }
  });

  it("makes the gateway process exit non-zero with the message when the config is bad", async () => {
    writeConfig(cfg, { ...good, "variables.yml": `tags:\n  - { tag: a/temp, driver: plc1, type: float }\n` });
    const p = Bun.spawn([process.execPath, join(import.meta.dir, "..", "..", "server", "main.ts"), "--config", cfg], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, EDGE_DATA_DIR: join(dir.path, "data"), EDGE_HTTP_PORT: "0" },
    });
    const code = await p.exited;
    const out = (await new Response(p.stdout).text()) + (await new Response(p.stderr).text());
    expect(code).not.toBe(0);
    expect(out).toContain(`configuration refused: ${join(cfg, "variables.yml")} at tags[0].type: Expected one of \\"bool\\"`);
  }, 30_000);
});
