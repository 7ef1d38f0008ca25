// deploy/: the systemd unit is verified by systemd itself where `systemd-analyze` exists (else its key
// lines are asserted, and the test says why); the container recipe, which cannot be built on this
// machine (no Docker daemon; hadolint is not packaged by Debian), gets structure checks, and its
// health check script is run against a real gateway.
import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startGateway, type TestGateway } from "./helpers/gateway.ts";
import { tempDir } from "./helpers/index.ts";

const root = join(import.meta.dir, "..");
const unitText = readFileSync(join(root, "deploy", "edge-gateway.service"), "utf8");
const containerfile = readFileSync(join(root, "deploy", "Containerfile"), "utf8");
const tmp = tempDir("edge-deploy-");
afterAll(() => tmp.cleanup());

/** `Key=value` lines of one section of a unit file (comments and blank lines skipped). */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) current = header[1]!;
    else if (current === name) {
      const i = line.indexOf("=");
      out.set(line.slice(0, i), [...(out.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
    }
  }
  return out;
}

describe("systemd unit", () => {
  const systemdAnalyze = Bun.which("systemd-analyze");
  it.skipIf(!systemdAnalyze)("passes systemd-analyze verify without a warning (paths pointed at this checkout)", () => {
    // verify checks that ExecStart's binary exists: point /opt/edge-gateway at this checkout
    const unit = join(tmp.path, "edge-gateway.service");
    writeFileSync(unit, unitText.replaceAll("/opt/edge-gateway", root));
    const r = Bun.spawnSync([systemdAnalyze!, "verify", "--man=no", unit]);
    // unknown keys and bad values are warnings on stderr with exit code 0: both must be clean
    expect({ code: r.exitCode, stderr: r.stderr.toString().trim() }).toEqual({ code: 0, stderr: "" });
  });

  it("runs Bun directly as a dedicated user, stops with one SIGTERM, restarts only on failure, and is confined to its data dir", () => {
    // asserted everywhere, so a machine without systemd-analyze still checks what matters
    const s = section(unitText, "Service");
    const one = (k: string) => s.get(k)?.[0];
    expect(one("Type")).toBe("simple");
    expect(one("User")).toBe("edge");
    expect(one("ExecStart")).toStartWith("/opt/edge-gateway/.bun/node_modules/.bin/bun server/main.ts --config /etc/edge-gateway");
    expect(one("KillSignal")).toBe("SIGTERM");
    expect(one("TimeoutStopSec")).toBe("30s");
    expect(one("Restart")).toBe("on-failure");
    expect(s.get("Environment")).toContain("EDGE_DATA_DIR=/var/lib/edge-gateway");
    expect(one("StateDirectory")).toBe("edge-gateway");
    expect(one("NoNewPrivileges")).toBe("yes");
    expect(one("ProtectSystem")).toBe("strict");
    expect(one("ReadWritePaths")).toBe("/var/lib/edge-gateway");
    expect(section(unitText, "Install").get("WantedBy")).toEqual(["multi-user.target"]);
  });
});

describe("container recipe", () => {
  const instructions = containerfile
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const runtime = instructions.slice(instructions.findLastIndex((l) => l.startsWith("FROM ")));
  const find = (kw: string) => runtime.filter((l) => l.startsWith(`${kw} `)).map((l) => l.slice(kw.length + 1));

  it("pins its base images and copies only paths that exist in the repository", () => {
    for (const from of instructions.filter((l) => l.startsWith("FROM "))) expect(from).toMatch(/^FROM \S+:[\w.-]+(-\w+)*( AS \w+)?$/);
    expect(containerfile).not.toContain(":latest");
    for (const copy of instructions.filter((l) => l.startsWith("COPY ") && !l.includes("--from="))) {
      const sources = copy.split(/\s+/).slice(1, -1);
      for (const src of sources) expect({ src, exists: existsSync(join(root, src)) }).toEqual({ src, exists: true });
    }
  });

  it("runs as a non-root user with a data volume, the three ports, SIGTERM and a /readyz health check", () => {
    expect(find("USER")).toEqual(["10001:10001"]);
    expect(find("VOLUME")).toEqual(['["/var/lib/edge-gateway"]']);
    expect(find("EXPOSE")).toEqual(["8080 4840 5020"]);
    expect(find("STOPSIGNAL")).toEqual(["SIGTERM"]);
    // exec form (JSON), so that Bun is PID 1 and receives the stop signal itself, not a shell
    for (const kw of ["ENTRYPOINT", "CMD"]) expect(() => JSON.parse(find(kw)[0]!)).not.toThrow();
    const health = find("HEALTHCHECK")[0]!;
    expect(health).toContain('CMD ["/app/.bun/node_modules/.bin/bun", "deploy/healthcheck.ts"]');
    expect(runtime.findIndex((l) => l.startsWith("USER "))).toBeLessThan(runtime.findIndex((l) => l.startsWith("ENTRYPOINT ")));
  });

  it("has a health check that passes against a ready gateway and fails when none answers", async () => {
    let g: TestGateway | null = null;
    try {
      g = await startGateway({ "drivers.yml": "drivers: []\n", "variables.yml": "tags: []\n" });
      // async: the gateway runs in this process and must answer while the check runs
      const check = async (port: number) => {
        const p = Bun.spawn([process.execPath, join(root, "deploy", "healthcheck.ts")], { stderr: "pipe", env: { ...process.env, EDGE_HTTP_PORT: String(port) } });
        return { exitCode: await p.exited, stderr: await new Response(p.stderr).text() };
      };
      const up = await check(g.gw.httpPort);
      expect({ code: up.exitCode, stderr: up.stderr }).toEqual({ code: 0, stderr: "" });
      const port = g.gw.httpPort;
      await g.stop();
      g = null;
      const down = await check(port);
      expect(down.exitCode).toBe(1);
      expect(down.stderr).toContain("readyz unreachable");
    } finally {
      await g?.stop();
    }
  });
});
