// Readable logs: a gateway whose stdout is a pipe prints JSON lines only (ISO timestamps), node-opcua's
// messages included, from the start of the OPC UA server to the stop; EDGE_LOG_FORMAT=pretty (what a TTY
// gets) prints lines for people. A real gateway process with the OPC UA server on.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { logFormat } from "../../server/logging.ts";
import { freePort, tempDir, writeConfig } from "../helpers/index.ts";

const ROOT = join(import.meta.dir, "..", "..");
let tmp: { path: string; cleanup(): void };

beforeAll(async () => {
  tmp = tempDir();
  writeConfig(join(tmp.path, "config"), {
    "gateway.yml": `dataDir: ${join(tmp.path, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: true, port: ${await freePort()}, allowAnonymous: true }\nmodbusSlave: { enabled: false }\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, config: { intervalMs: 100, signals: { a/b: { shape: sine, min: 0, max: 1, periodMs: 1000 } } } }]\n",
    "variables.yml": "tags:\n  - { tag: a/b, driver: sim, type: float64 }\n",
  });
});
afterAll(() => tmp.cleanup());

/** The gateway process: the child itself, or the child of `script` when it runs in a pseudo-terminal. */
const gatewayPid = (pid: number, viaPty: boolean): number => {
  if (!viaPty) return pid;
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/);
  return Number(children[0]);
};

/**
 * Runs the gateway until it is ready, stops it with SIGTERM, returns everything it printed. With `pty`,
 * it runs under util-linux `script`, whose pseudo-terminal makes its stdout a TTY.
 */
async function runGateway(env: Record<string, string>, pty = false): Promise<{ out: string; err: string }> {
  const argv = [process.execPath, join(ROOT, "server", "main.ts"), "--config", join(tmp.path, "config")];
  const cmd = pty ? ["script", "-qefc", argv.map((a) => `'${a}'`).join(" "), "/dev/null"] : argv;
  const proc = Bun.spawn(cmd, {
    cwd: tmp.path,
    env: { ...process.env, EDGE_LOG_LEVEL: "info", EDGE_READY_FD: "stdout", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const decoder = new TextDecoder();
  let out = "";
  const reader = proc.stdout.getReader();
  const deadline = Date.now() + 30_000;
  while (!out.includes('{"ready":true') && Date.now() < deadline) {
    const { done, value } = await reader.read();
    if (done) break;
    out += decoder.decode(value, { stream: true });
  }
  process.kill(gatewayPid(proc.pid, pty), "SIGTERM");
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    out += decoder.decode(value, { stream: true });
  }
  const err = await new Response(proc.stderr).text();
  await proc.exited;
  return { out, err };
}

describe("gateway logs", () => {
  it("are JSON lines only, with ISO timestamps, when stdout is a pipe (OPC UA server on)", async () => {
    const { out, err } = await runGateway({ EDGE_LOG_FORMAT: "" });
    const lines = out.split("\n").filter((l) => l.trim() !== "");
    const notJson = lines.filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
    expect(err.trim()).toBe("");
    const logs = lines.map((l) => JSON.parse(l)).filter((j) => !("ready" in j));
    expect(logs.some((j) => j.msg === "service started" && /opc/i.test(String(j.service)))).toBe(true);
    expect(logs.map((j) => j.msg)).toContain("stopped");
    for (const j of logs) expect(j.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }, 60_000);

  it("are lines for people with EDGE_LOG_FORMAT=pretty (as on a terminal)", async () => {
    const { out } = await runGateway({ EDGE_LOG_FORMAT: "pretty" });
    const lines = out.split("\n").filter((l) => l.trim() !== "" && !l.startsWith('{"ready"'));
    expect(lines.some((l) => /INFO.*gateway ready/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith("{"))).toEqual([]);
  }, 60_000);
});

describe.skipIf(!Bun.which("script"))("gateway logs on a terminal", () => {
  it("are lines for people, without any override, when stdout is a pseudo-terminal", async () => {
    const { out } = await runGateway({ EDGE_LOG_FORMAT: "" }, true);
    const lines = out.split(/\r?\n/).filter((l) => l.trim() !== "" && !l.startsWith('{"ready"'));
    expect(lines.some((l) => /INFO.*gateway ready/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith("{"))).toEqual([]);
  }, 60_000);
});

describe("logFormat", () => {
  it("is pretty on a TTY and JSON on a pipe unless EDGE_LOG_FORMAT says otherwise", () => {
    expect(logFormat({}, true)).toBe("pretty");
    expect(logFormat({}, false)).toBe("json");
    expect(logFormat({ EDGE_LOG_FORMAT: "json" }, true)).toBe("json");
    expect(logFormat({ EDGE_LOG_FORMAT: "pretty" }, false)).toBe("pretty");
  });
});
