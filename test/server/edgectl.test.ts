// edgectl run as a user runs it: a process, through npm where a Node-only user would, reading its exit
// code and its output.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor, writeConfig } from "../helpers/index.ts";

const ROOT = join(import.meta.dir, "..", "..");
const DEMO = join(ROOT, "server", "demo", "config");
const SECRET = "a-secret-of-at-least-32-characters-long!";

interface Run {
  code: number;
  out: string;
  err: string;
}
async function run(cmd: string[], env: Record<string, string> = {}): Promise<Run> {
  const p = Bun.spawn(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, EDGE_JWT_SECRET: "", ...env } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}
const edgectl = (...args: string[]) => run([process.execPath, join(ROOT, "server", "edgectl.ts"), ...args]);
const npm = (...args: string[]) => run(["npm", "run", "-s", ...args]);

describe("edgectl check", () => {
  let dir: ReturnType<typeof tempDir>;
  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(() => dir.cleanup());

  it("accepts the shipped demo config with exit 0, run through npm", async () => {
    const r = await npm("edgectl", "--", "check", "--config", DEMO);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("ok: server/demo/config: 1 endpoints, 2 of 2 drivers enabled, 16 tags");
  }, 60_000);

  it("lists every problem as 'file: path: message', one a line, with exit 1, and starts nothing", async () => {
    const cfg = writeConfig(join(dir.path, "bad"), {
      "gateway.yml": `dataDir: ${join(dir.path, "data")}\n`,
      "endpoints.yml": `endpoints:\n  plc: { url: "tcp://plc:502", tls: { ca: ca.pem } }\n`,
      "drivers.yml": `drivers:\n  - { id: plc, type: modbuss, endpoint: plc }\n  - { id: sim, type: simulator, config: { intervalMs: -5 } }\n`,
      "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
    });
    const r = await edgectl("check", "--config", cfg);
    expect(r.code).toBe(1);
    expect(r.out.trim().split("\n")).toEqual([
      `${join(cfg, "endpoints.yml")}: endpoints.plc.tls: TLS settings need a tls+tcp:// or mqtts:// URL, not tcp://`,
      `${join(cfg, "drivers.yml")}: drivers[0].type: unknown driver type 'modbuss' (known: simulator, modbus, opcua, mqtt, plugin)`,
      `${join(cfg, "drivers.yml")}: drivers[1].config.intervalMs: Expected number to be greater or equal to 0 (got -5)`,
    ]);
    expect(r.err).toContain("3 problems");
    expect(await Bun.file(join(dir.path, "data", "log.duckdb")).exists()).toBe(false);
  }, 30_000);

  it("refuses a rule file that would not load, naming its file and line, with exit 1", async () => {
    const cfg = writeConfig(join(dir.path, "rules-bad"), {
      "gateway.yml": `dataDir: ${join(dir.path, "data2")}\n`,
      "drivers.yml": `drivers:\n  - { id: sim, type: simulator }\n`,
      "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
    });
    writeConfig(join(cfg, "rules"), {
      "ok.js": `export const meta = { triggers: ["a/temp"] };\nexport function onMessage() {}\n`,
      "bad.js": `export const meta = { triggers: ["a/temp"] };\nexport function onMessage(m) {\n  m.value +;\n}\n`,
    });
    const r = await edgectl("check", "--config", cfg);
    expect(r.code).toBe(1);
    expect(r.out.trim()).toBe(`${join(cfg, "rules", "bad.js")}:3: SyntaxError: unexpected token in expression: ';'`);
    expect(r.err).toContain("1 rule file refused");
  }, 30_000);

  it("asks for the config directory when none is given", async () => {
    const r = await run([process.execPath, join(ROOT, "server", "edgectl.ts"), "check"], { EDGE_CONFIG_DIR: "" });
    expect(r.code).toBe(2);
    expect(r.err).toContain("--config DIR");
  }, 30_000);
});

describe("edgectl token and hash-password", () => {
  it("prints the token options for `npm run token -- --help` instead of a stack trace", async () => {
    const r = await npm("token", "--", "--help");
    expect(r.code).toBe(0);
    expect(r.out).toContain("--secret <s>");
    expect(r.err).not.toContain("at ");
  }, 60_000);

  it("mints a token with the claims asked for, and refuses an unknown option in one line", async () => {
    const ok = await edgectl("token", "--secret", SECRET, "--sub", "bob", "--scope", "read");
    expect(ok.code).toBe(0);
    const claims = JSON.parse(Buffer.from(ok.out.trim().split(".")[1]!, "base64url").toString());
    expect(claims).toMatchObject({ sub: "bob", scope: "read", tenant: "default" });
    const bad = await edgectl("token", "--colour", "red");
    expect(bad.code).toBe(2);
    expect(bad.err.trim()).toBe("token: Unknown option '--colour' (see --help)");
  }, 30_000);

  it("hashes a password into an argon2id string that verifies", async () => {
    const r = await edgectl("hash-password", "correct horse");
    expect(r.code).toBe(0);
    const hash = r.out.trim();
    expect(hash).toStartWith("$argon2id$");
    expect(await Bun.password.verify("correct horse", hash)).toBe(true);
  }, 30_000);
});

describe("edgectl status", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway({
      "drivers.yml": `drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 50 } }\n`,
      "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
    });
    await waitFor(async () => (await fetch(`${t.url}/readyz`)).status === 200, "the gateway ready");
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("prints a running gateway's readiness readably and exits 0 when it is ready", async () => {
    const r = await edgectl("status", "--url", t.url);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^edge-1: OK \(checked /);
    expect(r.out).toMatch(/driver +sim +simulator +Active/);
  }, 30_000);

  it("exits 1 with one line when no gateway answers", async () => {
    const r = await edgectl("status", "--url", "http://127.0.0.1:1");
    expect(r.code).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("status: no answer from http://127.0.0.1:1/readyz");
  }, 30_000);
});

describe("edgectl backup", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway({
      "gateway.yml": `auth: { hs256Secret: "${SECRET}" }`,
      "drivers.yml": `drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 20 } }\n`,
      "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
    });
    await waitFor(() => t.gw.ctx.log.head > 20, "some frames");
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("writes an online backup of a running gateway with an admin token and prints where", async () => {
    const token = (await edgectl("token", "--secret", SECRET, "--sub", "ops", "--tenant", "default", "--scope", "admin")).out.trim();
    const r = await edgectl("backup", "--url", t.url, "--token", token);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { path: string; head: number };
    expect(out.path).toStartWith(join(t.dir, "data", "backups"));
    expect(out.head).toBeGreaterThan(20);
    expect(await Bun.file(join(out.path, "log.duckdb")).exists()).toBe(true);
  }, 30_000);

  it("refuses without a token, and reports the gateway's refusal of a token without the admin scope in one line", async () => {
    expect((await edgectl("backup", "--url", t.url)).code).toBe(2);
    const reader = (await edgectl("token", "--secret", SECRET, "--sub", "ops", "--tenant", "default", "--scope", "read")).out.trim();
    const r = await edgectl("backup", "--url", t.url, "--token", reader);
    expect(r.code).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("403");
  }, 30_000);
});

describe("help", () => {
  it("prints edgectl's commands for --help", async () => {
    const r = await edgectl("--help");
    expect(r.code).toBe(0);
    for (const c of ["check", "token", "hash-password", "status"]) expect(r.out).toContain(`  ${c}`);
  }, 30_000);

  it("prints usage for `npm start -- --help` instead of starting the demo", async () => {
    const r = await npm("start", "--", "--help");
    expect(r.code).toBe(0);
    expect(r.out).toContain("usage: npm start -- [--config DIR]");
    expect(r.out + r.err).not.toContain("gateway ready");
  }, 60_000);
});
