// The gateway on a full disk, for real (its data directory on a small tmpfs): /readyz says the log is
// degraded and why (503), the driver is paused by backpressure, and once space is freed ingest resumes
// by itself with every committed frame present and offsets gapless.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame } from "../../schemas/index.ts";
import type { Readiness } from "../../schemas/index.ts";
import { startGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { smallDisk, type SmallDisk } from "../helpers/tmpfs.ts";
import { settlesWithin } from "../../storage/time.ts";

// random text: DuckDB's compression must not shrink the readings, or the disk fills at its own pace
const pad = () => randomBytes(750).toString("hex");

let disk: SmallDisk | null = null;
afterEach(() => {
  disk?.cleanup();
  disk = null;
});

describe("gateway on a full disk", () => {
  it("reports the log degraded with the reason (503) and the driver paused, then ingests again by itself once space is freed, gapless", async () => {
    // see test/storage/disk-full.test.ts for the sizes: the checkpoint fails and DuckDB invalidates the instance
    disk = smallDisk(32, 8);
    const t = await startGateway({
      "gateway.yml": `dataDir: ${join(disk.path, "data")}\nlog: { maxDelayMs: 5, highWater: 2000, lowWater: 500, tailFrames: 500 }\nwatchConfig: false`,
      "drivers.yml": `drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 5 }\n`,
      "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n  - { tag: a/level, driver: sim, type: float64 }\n`,
    });
    const log = t.gw.ctx.log;
    let filling = true;
    try {
      await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the driver Active");
      // large readings from a second producer (as a busy driver would) fill the disk in seconds
      const filler = (async () => {
        for (let seq = 0; filling; seq++) {
          await log.waitForCapacity();
          const batch: DataFrame[] = Array.from({ length: 100 }, (_, i) => ({ kind: "data", tag: "fill", value: `${seq}.${i}:${pad()}`, ts: Date.now() * 1000, quality: 0, source: "filler" }));
          log.append(batch).catch(() => undefined);
          await Bun.sleep(1);
        }
      })();

      const down = await waitFor(async () => {
        const r = await fetch(`${t.url}/readyz`);
        const doc = (await r.json()) as Readiness;
        return r.status === 503 && doc.components.log.degraded && doc;
      }, "/readyz to report the degraded log", 60_000);
      expect(down.components.log.state).toBe("degraded");
      expect(down.components.log.reason).toMatch(/No space left on device|autocheckpoint failed|invalidated/);
      expect(down.reasons).toContainEqual(expect.stringMatching(/^log: commits fail \(\d+ attempts, retried\): /));
      expect(down.components.log.paused).toBe(true);
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      expect(metrics).toMatch(/^edge_log_paused 1/m);
      // the driver waits at the log's capacity: it sends nothing while commits fail. On a disk that is full
      // to the last blocks a small commit may still pass now and then (the log recovers, the driver sends,
      // the next commit fails again: seen in a clean-clone run), so the window counts only if none passed
      let recovered = 0;
      const onRecovered = () => recovered++;
      log.on("recovered", onRecovered);
      const sent = t.gw.ctx.drivers.status()[0]!.framesSent;
      await Bun.sleep(200);
      log.off("recovered", onRecovered);
      if (log.isDegraded && recovered === 0) expect(t.gw.ctx.drivers.status()[0]!.framesSent).toBe(sent);

      const headWhileFull = log.head;
      filling = false;
      disk.free();
      // the filler waited at the log's capacity too: it ends once the log takes frames again
      if (!(await settlesWithin(filler, 30_000))) {
        const h = log.health();
        throw new Error(`the log did not take frames again within 30 s of freeing space: ${JSON.stringify(h)}`);
      }
      await waitFor(async () => (await fetch(`${t.url}/readyz`)).status === 200, "/readyz ok again after space was freed", 20_000);
      await waitFor(() => log.head > headWhileFull + 50, "the driver's readings committed again", 10_000);
      expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/^edge_log_degraded 0/m);
      let expected = 1;
      for await (const f of log.read({ from: 1 })) expect(f.offset).toBe(expected++);
      expect(expected - 1).toBe(log.head);
    } finally {
      filling = false;
      disk.free(); // a failed assertion must not leave the gateway unable to flush at stop
      await t.stop();
    }
  }, 90_000);
});
