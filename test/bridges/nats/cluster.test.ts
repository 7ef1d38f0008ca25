// A three-node JetStream cluster, stream with 3 replicas: the stream leader is SIGKILLed while frames
// flow. Publishing pauses during the election ("timeout", then "jetstream is not enabled"), the bridge
// retries with the same ids, and the stream ends with every offset exactly once.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { exactlyOnce, NatsCluster, readStream } from "../../helpers/nats.ts";
import { provisionStream, parseNatsConfig } from "../../../bridges/nats/index.ts";
import { frames, makeBridge, natsSection, openLog } from "./harness.ts";

let nats: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const dir = tempDir("edge-nats-cluster-");

beforeAll(async () => {
  nats = await NatsCluster.three();
  nc = await nats.connect();
  jsm = await nats.ready(nc);
}, 30_000);
afterAll(async () => {
  await nc.close();
  await nats.close();
  dir.cleanup();
});

describe("nats bridge on a three-node cluster", () => {
  it("loses and duplicates nothing when the stream leader is killed while frames flow", async () => {
    const section = natsSection(nats.servers, { streamConfig: { provision: false, replicas: 3, duplicateWindowSec: 600 } });
    expect((await provisionStream(jsm, parseNatsConfig(section))).action).toBe("created");
    const leader = await waitFor(async () => (await jsm.streams.info("EDGE")).cluster?.leader, "a stream leader", 15_000, 100);
    const log = await openLog(join(dir.path, "log.duckdb"));
    const bridge = makeBridge(log, nats.servers, { streamConfig: { provision: false, replicas: 3 } });
    await bridge.start();
    const ingest = setInterval(() => void log.append(frames(100)).catch(() => undefined), 5);
    try {
      await waitFor(() => bridge.publisher.acked >= 3000, "frames flowing before the failover", 15_000);
      await nats.node(leader).stop("SIGKILL");
      await waitFor(async () => {
        const l = (await jsm.streams.info("EDGE")).cluster?.leader;
        return l && l !== leader;
      }, "a new stream leader", 20_000, 100);
      const at = log.head;
      await waitFor(() => bridge.publisher.acked >= at, "frames acknowledged after the failover", 20_000);
    } finally {
      clearInterval(ingest);
    }
    await log.append(frames(1)); // appends commit in order: after this one, the head stays put
    await waitFor(() => bridge.publisher.acked >= log.head, "everything acknowledged", 20_000);
    const got = await readStream(nc, "EDGE");
    expect(exactlyOnce(got.offsets, log.head)).toBe("");
    await bridge.stop();
    await log.close();
  }, 60_000);
});
