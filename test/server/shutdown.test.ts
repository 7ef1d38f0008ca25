// Clean shutdown: the gateway as a child process, ingesting at a high rate, gets SIGTERM; it exits 0
// after flushing the writer, and the log reopens cleanly with every frame it reported, without gaps.
import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { EventLog } from "../../storage/index.ts";
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
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "..", "..", "server", "main.ts"), "--config", cfg], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, EDGE_READY_FD: "stdout", EDGE_LOG_LEVEL: "info", EDGE_HTTP_PORT: "0" },
    });
    let out = "";
    const reading = (async () => {
      const decoder = new TextDecoder();
      // Bun's ReadableStream is async-iterable; the DOM lib types do not say so
      for await (const chunk of child.stdout as unknown as AsyncIterable<Uint8Array>) out += decoder.decode(chunk, { stream: true });
    })();
    try {
      const port = await waitFor(() => /\{"ready":true,"http":(\d+)\}/.exec(out)?.[1], "the ready line", 30_000);
      const health = async () => (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { log: { head: number }; drivers: { state: string }[] };
      // well into ingest, at a high rate, before the signal
      await waitFor(async () => (await health()).log.head > 20 * TAGS, "frames committed", 30_000);
      const reported = (await health()).log.head;
      child.kill("SIGTERM");
      const code = await child.exited;
      await reading;
      expect(code).toBe(0);
      expect(out).toContain('"msg":"stopped"');

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
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 90_000);
});
