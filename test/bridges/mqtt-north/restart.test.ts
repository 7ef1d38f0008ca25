// The gateway itself crashes (SIGKILL) mid-stream and is started again: delivery resumes from the
// committed cursor and nothing is skipped. Frames after the cursor may arrive twice (they were published
// but their acknowledgement had not reached the cursor yet: at-least-once after the cursor).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { EventLog } from "../../../storage/index.ts";
import { spawnGateway } from "../../helpers/gateway-process.ts";
import { Mosquitto } from "../../helpers/mosquitto.ts";
import { tempDir, waitFor, writeConfig } from "../../helpers/index.ts";
import { subscriber } from "./harness.ts";

let broker: Mosquitto;
const tmp = tempDir();
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker.close();
  tmp.cleanup();
});


/** The gateway as a child process (its warnings on the test's stderr). */
const startGateway = (configDir: string) => spawnGateway(configDir, { cwd: tmp.path, stderr: "inherit" });

async function readLog(dataDir: string) {
  const log = await EventLog.open({ path: join(dataDir, "log.duckdb"), tailFrames: 0 });
  try {
    const data: number[] = [];
    for await (const f of log.read({ from: 1, kinds: ["data"] })) data.push(f.offset);
    return { cursor: log.cursor("mqtt-north"), head: log.head, data };
  } finally {
    await log.close();
  }
}

describe("mqtt-north across a gateway crash", () => {
  it("resumes from the committed cursor after SIGKILL and skips nothing", async () => {
    const dataDir = join(tmp.path, "data");
    const configDir = writeConfig(join(tmp.path, "config"), {
      "gateway.yml": [
        "gatewayId: gwr",
        `dataDir: ${dataDir}`,
        "http: { host: 127.0.0.1, port: 0 }",
        "opcua: { enabled: false }",
        "modbusSlave: { enabled: false }",
        `mqtt: { enabled: true, url: "${broker.url}", qos: 1, batch: { maxFrames: 50, maxDelayMs: 5 } }`,
      ].join("\n"),
      "drivers.yml": "drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 5 }\n",
      "variables.yml": "tags:\n  - { tag: r/a, driver: sim, type: float64 }\n  - { tag: r/b, driver: sim, type: int32 }\n",
    });
    const sub = await subscriber(broker.url, "default/gwr/batch", { qos: 1, clientId: "cloud-r", clean: false, properties: { sessionExpiryInterval: 3600 } });
    try {
      let gw = await startGateway(configDir);
      await waitFor(() => sub.offsets().length >= 300, "frames from the first run", 30_000);
      await gw.child.stop("SIGKILL");
      const atCrash = await readLog(dataDir);
      expect(atCrash.cursor).toBeGreaterThan(0);
      const receivedBefore = sub.offsets().length;
      gw = await startGateway(configDir);
      await waitFor(() => sub.offsets().some((o) => o > atCrash.head + 200), "frames from the second run", 30_000);
      await gw.child.stop("SIGTERM");
      const end = await readLog(dataDir);
      await waitFor(() => new Set(sub.offsets()).size >= end.data.filter((o) => o <= end.cursor).length, "every frame up to the cursor", 15_000);
      const got = sub.offsets();
      const unique = [...new Set(got)];
      // nothing skipped: every committed data frame up to the final cursor reached the subscriber, in order
      expect(unique.filter((o) => o <= end.cursor)).toEqual(end.data.filter((o) => o <= end.cursor));
      // duplicates only after the cursor committed before the crash
      const seen = new Set<number>();
      for (const o of got) {
        if (seen.has(o)) expect(o).toBeGreaterThan(atCrash.cursor);
        seen.add(o);
      }
      expect(receivedBefore).toBeGreaterThan(0);
    } finally {
      await sub.close();
    }
  }, 90_000);
});
