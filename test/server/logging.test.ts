// Readable logs: a gateway whose stdout is a pipe prints JSON lines only (ISO timestamps), node-opcua's
// messages included, from the start of the OPC UA server to the stop; EDGE_LOG_FORMAT=pretty (what a TTY
// gets) prints lines for people. A real gateway process with the OPC UA server on.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { logFormat } from "../../server/logging.ts";
import { ABORTED, deadline, TIMED_OUT } from "../../storage/time.ts";
import { freePort, tempDir, writeConfig } from "../helpers/index.ts";

const ROOT = join(import.meta.dir, "..", "..");
/** How long a gateway may take to print its ready line (the whole suite under nice 10 with two busy loops took more than 45 s). */
const READY_TIMEOUT_MS = 60_000;
let tmp: { path: string; cleanup(): void };
let runs = 0;

beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp.cleanup());

/**
 * A config directory with a data directory of its own: a gateway a timed-out test left stopping (the
 * runner SIGTERMs it) still holds its log's lock, and a later test's gateway on the same data would exit.
 * The OPC UA server's PKI folder is shared: its certificate is made once, as when the data was shared.
 */
async function freshConfig(): Promise<string> {
  const dir = join(tmp.path, `run${++runs}`);
  return writeConfig(join(dir, "config"), {
    "gateway.yml": `dataDir: ${join(dir, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: true, port: ${await freePort()}, allowAnonymous: true, pkiDir: ${join(tmp.path, "pki")} }\nmodbusSlave: { enabled: false }\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, config: { intervalMs: 100, signals: { a/b: { shape: sine, min: 0, max: 1, periodMs: 1000 } } } }]\n",
    "variables.yml": "tags:\n  - { tag: a/b, driver: sim, type: float64 }\n",
  });
}

/** The child `script` runs (the gateway), or null when it has none (any more). */
const childOfScript = (pid: number): number | null => {
  let children = "";
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  } catch {
    // script has exited
  }
  const child = Number(children.split(/\s+/)[0]);
  return Number.isInteger(child) && child > 0 ? child : null;
};

/**
 * The gateway process: the child itself, or the child of `script` when it runs in a pseudo-terminal.
 * Throws when `script` has no child: an empty list read as pid 0 would signal the test runner's whole
 * process group (a gateway that exited early took the whole suite down that way).
 */
const gatewayPid = (pid: number, viaPty: boolean): number => {
  const gateway = viaPty ? childOfScript(pid) : pid;
  if (gateway === null) throw new Error("the gateway under script exited before it was stopped");
  return gateway;
};

/**
 * Runs the gateway until it is ready, stops it with SIGTERM, returns everything it printed. With `pty`,
 * it runs under util-linux `script`, whose pseudo-terminal makes its stdout a TTY. Fails with what the
 * gateway printed when it is not ready in time or exits first; the process is killed whatever happens.
 */
async function runGateway(env: Record<string, string>, pty = false): Promise<{ out: string; err: string }> {
  const argv = [process.execPath, join(ROOT, "server", "main.ts"), "--config", await freshConfig()];
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
  try {
    const until = performance.now() + READY_TIMEOUT_MS;
    while (!out.includes('{"ready":true')) {
      const next = await deadline(reader.read(), until - performance.now());
      if (next === TIMED_OUT || next === ABORTED) throw new Error(`the gateway was not ready within ${READY_TIMEOUT_MS} ms; it printed: ${out.slice(-1500)}`);
      if (next.done) throw new Error(`the gateway exited (${await proc.exited}) before it was ready; it printed: ${out.slice(-1500)}`);
      out += decoder.decode(next.value, { stream: true });
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
  } finally {
    // a failure above leaves no gateway running into the next test
    if (proc.exitCode === null && proc.signalCode === null) {
      const gateway = pty ? childOfScript(proc.pid) : null;
      if (gateway !== null) process.kill(gateway, "SIGKILL");
      proc.kill("SIGKILL");
      await proc.exited;
    }
  }
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
  }, 90_000);

  it("are lines for people with EDGE_LOG_FORMAT=pretty (as on a terminal)", async () => {
    const { out } = await runGateway({ EDGE_LOG_FORMAT: "pretty" });
    const lines = out.split("\n").filter((l) => l.trim() !== "" && !l.startsWith('{"ready"'));
    expect(lines.some((l) => /INFO.*gateway ready/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith("{"))).toEqual([]);
  }, 90_000);
});

describe.skipIf(!Bun.which("script"))("gateway logs on a terminal", () => {
  it("are lines for people, without any override, when stdout is a pseudo-terminal", async () => {
    const { out } = await runGateway({ EDGE_LOG_FORMAT: "" }, true);
    const lines = out.split(/\r?\n/).filter((l) => l.trim() !== "" && !l.startsWith('{"ready"'));
    expect(lines.some((l) => /INFO.*gateway ready/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith("{"))).toEqual([]);
  }, 90_000);
});

describe("logFormat", () => {
  it("is pretty on a TTY and JSON on a pipe unless EDGE_LOG_FORMAT says otherwise", () => {
    expect(logFormat({}, true)).toBe("pretty");
    expect(logFormat({}, false)).toBe("json");
    expect(logFormat({ EDGE_LOG_FORMAT: "json" }, true)).toBe("json");
    expect(logFormat({ EDGE_LOG_FORMAT: "pretty" }, false)).toBe("pretty");
  });
});
