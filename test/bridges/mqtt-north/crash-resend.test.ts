// How many frames the cloud gets twice when the gateway is SIGKILLed mid-drain. A crash re-sends every
// frame published past the stored cursor: the in-flight window, plus what was acknowledged but not
// stored yet. The uplink documents a bound of a window and a quarter (maxInflight x batch.maxFrames x
// 1.25), and holds it also when storing the cursor is slow (a busy disk): a publish waits for the store
// rather than letting the unstored acknowledged frames grow with the store's latency.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { createMqttNorth } from "../../../bridges/mqtt-north/index.ts";
import { Catalog } from "../../../schemas/catalog.ts";
import { EventLog } from "../../../storage/index.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { Mosquitto } from "../../helpers/mosquitto.ts";
import { Child } from "../../helpers/process.ts";
import { frames, subscriber } from "./harness.ts";

const BACKLOG = 30_000;
/** frames the cloud has received when the gateway is killed */
const KILL_AFTER = 8_000;
const WINDOW = { maxInflight: 8, batch: { maxFrames: 100, maxDelayMs: 5 } };
const BOUND = WINDOW.maxInflight * WINDOW.batch.maxFrames * 1.25;

let broker: Mosquitto;
const tmp = tempDir("edge-crash-resend-");
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker.close();
  tmp.cleanup();
});

let runs = 0;

/**
 * Drains a backlog from a gateway child, SIGKILLs it once the cloud has KILL_AFTER frames, starts the
 * uplink again on the same log and returns how many frames the cloud received twice (every frame is
 * checked to arrive, none lost).
 */
async function resentAfterCrash(storeDelayMs: number): Promise<{ resent: number; cursor: number }> {
  const path = join(tmp.path, `log-${++runs}.duckdb`);
  const backlog = await EventLog.open({ path, tailFrames: 0, maxDelayMs: 1 });
  for (let i = 0; i < BACKLOG; i += 5000) await backlog.append(frames(5000, i, ["c/a", "c/b"]));
  await backlog.close();
  const sub = await subscriber(broker.url, "default/crash/batch", { qos: 1, clientId: `cloud-crash-${runs}` });
  const child = new Child("uplink child", [process.execPath, join(import.meta.dir, "crash-child.ts"), broker.url, path, JSON.stringify(WINDOW), String(storeDelayMs)], { stderr: "inherit" });
  try {
    await child.waitForOutput((o) => o.includes('"ready"'), "the uplink started");
    await waitFor(() => sub.offsets().length >= KILL_AFTER, `${KILL_AFTER} frames at the cloud`, 30_000, 2);
    await child.stop("SIGKILL");
    const log = await EventLog.open({ path, tailFrames: 0, maxDelayMs: 1 });
    const cursor = log.cursor("crash");
    const bridge = createMqttNorth({
      log, catalog: new Catalog(), registry: new Registry(), logger: pino({ level: "silent" }), gatewayId: "crash", configDir: tmp.path,
      section: { enabled: true, url: broker.url, qos: 1, cursor: "crash", clientId: "edge-crash", ...WINDOW },
    })!;
    await bridge.start();
    try {
      await waitFor(() => new Set(sub.offsets()).size >= BACKLOG, "every frame at the cloud after the restart", 30_000);
    } finally {
      await bridge.stop();
      await log.close();
    }
    const got = sub.offsets();
    expect(new Set(got)).toEqual(new Set(Array.from({ length: BACKLOG }, (_, i) => i + 1)));
    return { resent: got.length - BACKLOG, cursor };
  } finally {
    await child.stop("SIGKILL");
    await sub.close();
  }
}

describe("mqtt-north re-sends after a gateway SIGKILL", () => {
  it("re-sends at most a window and a quarter of frames after a SIGKILL mid-drain, and loses none", async () => {
    const { resent, cursor } = await resentAfterCrash(0);
    console.log(`re-sent after a SIGKILL: ${resent} frames (bound ${BOUND}, cursor at the crash ${cursor})`);
    expect(cursor).toBeGreaterThan(0);
    expect(resent).toBeLessThanOrEqual(BOUND);
  }, 60_000);

  it("re-sends at most a window and a quarter when every cursor store takes 100 ms longer", async () => {
    const { resent, cursor } = await resentAfterCrash(100);
    console.log(`re-sent after a SIGKILL with slow cursor stores: ${resent} frames (bound ${BOUND}, cursor at the crash ${cursor})`);
    expect(resent).toBeLessThanOrEqual(BOUND);
  }, 60_000);
});
