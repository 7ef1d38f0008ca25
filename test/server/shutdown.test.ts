// Clean shutdown: the gateway as a child process, ingesting at a high rate, gets SIGTERM; it exits 0
// after flushing the writer, and the log reopens cleanly with every frame it reported, without gaps.
import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { EventLog } from "../../storage/index.ts";
import { spawnGateway } from "../helpers/gateway-process.ts";
import { tempDir, waitFor, writeConfig } from "../helpers/index.ts";

const dir = tempDir("edge-shutdown-");
afterAll(() => dir.cleanup());

const TAGS = 200;
const files = {
  "gateway.yml": [
    `dataDir: ${join(dir.path, "data")}`,
    "http: { host: 127.0.0.1, port: 0 }",
    "opcua: { enabled: false }",
    "modbusSlave: { enabled: false }",
    "demo: { enabled: false }",
    "log: { batchSize: 5000, maxDelayMs: 5 }",
  ].join("\n") + "\n",
  "drivers.yml": "drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 0 }\n",
  "variables.yml": "tags:\n" + Array.from({ length: TAGS }, (_, i) => `  - { tag: plant/t${i}, driver: sim, type: float64 }\n`).join(""),
};

describe("gateway shutdown", () => {
  it("flushes the writer and exits 0 on SIGTERM, leaving a clean, gapless, unlocked log", async () => {
    const cfg = writeConfig(join(dir.path, "config"), files);
    const { child, url } = await spawnGateway(cfg, { env: { EDGE_LOG_LEVEL: "info", EDGE_HTTP_PORT: "0" } });
    try {
      const health = async () => (await (await fetch(`${url}/healthz`)).json()) as { log: { head: number }; drivers: { state: string }[] };
      // well into ingest, at a high rate, before the signal
      await waitFor(async () => (await health()).log.head > 20 * TAGS, "frames committed", 30_000);
      const reported = (await health()).log.head;
      const code = await child.stop("SIGTERM");
      await child.outputEnded;
      expect(code).toBe(0);
      expect(child.output).toContain('"msg":"stopped"');

      // opening it at all shows the file is no longer locked by the gateway
      const log = await EventLog.open({ path: join(dir.path, "data", "log.duckdb"), tailFrames: 0 });
      try {
        expect(log.head).toBeGreaterThanOrEqual(reported);
        const conn = await log.connect();
        const [count, distinct, min, max] = (await conn.runAndReadAll(`SELECT count(*), count(DISTINCT "offset"), min("offset"), max("offset") FROM log`)).getRows()[0]!.map(Number);
        conn.closeSync();
        expect({ count, distinct, min, max }).toEqual({ count: log.head, distinct: log.head, min: 1, max: log.head });
        // the driver's last state change, Shutdown, was recorded before the log closed
        let last = "";
        for await (const f of log.read({ from: Math.max(1, log.head - 50), kinds: ["event"] })) if (f.kind === "event" && f.type === "driver.state") last = String(f.data?.state);
        expect(last).toBe("Shutdown");
      } finally {
        await log.close();
      }
    } finally {
      await child.stop("SIGKILL");
    }
  }, 90_000);
});
