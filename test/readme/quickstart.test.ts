// The README's quick start, run as a script the way a newcomer pastes it: a fresh data directory, the demo,
// waiting for readiness, a read, a setpoint write and a query, each of which must succeed. Only the ports
// are moved to free ones (the suite may run beside another gateway) and the data directory is a temporary one.
import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, tempDir } from "../helpers/index.ts";

const ROOT = join(import.meta.dir, "..", "..");

/** The first ```sh block under "## Quick start". */
function quickStart(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Quick start"));
  const m = /```sh\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error("README.md has no ```sh block under ## Quick start");
  return m[1]!;
}

describe("README quick start", () => {
  it("runs as pasted on a fresh data directory: ready, a tag read, a setpoint written, a query answered", async () => {
    const dir = tempDir("edge-quickstart-");
    const [http, opcua, slave, plc] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const block = quickStart().replaceAll("127.0.0.1:8080", `127.0.0.1:${http}`).replaceAll("localhost:8080", `localhost:${http}`);
    // the gateway is stopped the way the README says (kill %1: one SIGTERM to npm), and must be gone; the trap
    // stops it too when a step fails, so that a failure is reported instead of a hang
    const script = `set -euo pipefail\ntrap 'kill %1 2>/dev/null; wait %1 2>/dev/null || true' EXIT\n${block}\necho QUICKSTART-OK\n`;
    const p = Bun.spawn(["bash", "-c", script], {
      // its own process group: a SIGKILL at the time limit skips the trap, and must not leave npm and the gateway running
      detached: true,
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, EDGE_DATA_DIR: join(dir.path, "data"), EDGE_HTTP_PORT: String(http), EDGE_OPCUA_PORT: String(opcua), EDGE_MODBUS_SLAVE_PORT: String(slave), EDGE_DEMO_PLC_PORT: String(plc), EDGE_LOG_LEVEL: "warn" },
    });
    const timer = setTimeout(() => process.kill(-p.pid, "SIGKILL"), 150_000);
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    clearTimeout(timer);
    try {
      expect({ code, tail: err.slice(-2000) }).toEqual({ code: 0, tail: expect.any(String) });
      expect(out).toContain("QUICKSTART-OK");
      // the tag read, the write's command with its ack, and the query's rows
      expect(out).toMatch(/"tag":"line1\/boiler\/temperature"/);
      expect(out).toMatch(/"t":\[\d/);
      expect(out).toMatch(/"code":"ok"/);
      expect(out).toMatch(/"rows":\[\[/);
      // nothing listens any more on the HTTP port
      expect(await fetch(`http://127.0.0.1:${http}/healthz`).then(() => "open", () => "closed")).toBe("closed");
    } finally {
      dir.cleanup();
    }
  }, 180_000);
});
