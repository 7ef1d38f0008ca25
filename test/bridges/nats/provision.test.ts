// `edgectl nats provision` run as a user runs it (a process), against a real nats-server: it creates the
// stream of gateway.yml's nats: section, finds it unchanged the second time, and updates changed limits.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { tempDir, writeConfig } from "../../helpers/index.ts";
import { NatsCluster } from "../../helpers/nats.ts";

const ROOT = join(import.meta.dir, "..", "..", "..");
let nats: NatsCluster;
const dir = tempDir("edge-nats-provision-");

beforeAll(async () => {
  nats = await NatsCluster.single();
});
afterAll(async () => {
  await nats.close();
  dir.cleanup();
});

async function provision(maxAgeSec: number): Promise<{ code: number; out: string; err: string }> {
  const cfg = writeConfig(join(dir.path, "config"), {
    "gateway.yml": `dataDir: ${join(dir.path, "data")}\nnats:\n  enabled: false\n  servers: ["${nats.servers[0]}"]\n  stream: FLEET\n  streamConfig: { maxAgeSec: ${maxAgeSec}, duplicateWindowSec: 3600 }\n`,
    "endpoints.yml": "endpoints: {}\n",
    "drivers.yml": "drivers: []\n",
    "variables.yml": "tags: []\n",
  });
  const p = Bun.spawn([process.execPath, join(ROOT, "server", "edgectl.ts"), "nats", "provision", "--config", cfg], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

describe("edgectl nats provision", () => {
  it("creates the stream, then reports it unchanged, then updates a changed limit", async () => {
    const first = await provision(86_400);
    expect(first.err).toBe("");
    expect(first.code).toBe(0);
    expect(first.out).toStartWith("created: stream FLEET");
    expect(first.out).toContain("subjects edge.>");
    const again = await provision(86_400);
    expect(again.out).toStartWith("unchanged: stream FLEET");
    const changed = await provision(3600);
    expect(changed.out).toStartWith("updated: stream FLEET");
    const nc = await nats.connect();
    const info = await (await jetstreamManager(nc)).streams.info("FLEET");
    expect(info.config.max_age).toBe(3600 * 1e9);
    expect(info.config.duplicate_window).toBe(3600 * 1e9);
    await nc.close();
  }, 30_000);

  it("exits 1 with one line when no NATS server answers", async () => {
    await nats.nodes[0]!.stop("SIGKILL");
    const r = await provision(60);
    await nats.nodes[0]!.start();
    expect(r.code).toBe(1);
    expect(r.err).toStartWith("nats provision: ");
    expect(r.err.trim().split("\n")).toHaveLength(1);
  }, 30_000);
});
