// The bridge wired into the gateway by gateway.yml's nats: section: the simulator's frames reach the
// stream, and /readyz lists the bridge as a service, degraded with its lag while NATS is down.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { waitFor } from "../../helpers/index.ts";
import { NatsCluster, readStream } from "../../helpers/nats.ts";

let nats: NatsCluster;
let nc: NatsConnection;
let t: TestGateway;

beforeAll(async () => {
  nats = await NatsCluster.single();
  nc = await nats.connect();
  t = await startGateway({
    "gateway.yml": `nats: { enabled: true, servers: ["${nats.servers[0]}"], retryMinMs: 50, retryMaxMs: 200, ackTimeoutMs: 1000, streamConfig: { provision: true } }`,
    "drivers.yml": `drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 20 } }\n`,
    "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
  });
}, 30_000);
afterAll(async () => {
  await t?.stop();
  await nc.close();
  await nats.close();
});

type Readyz = { components: { services: Record<string, { state: string; reasons: string[]; lagFrames: number }> } };
const nat = async () => ((await (await fetch(`${t.url}/readyz`)).json()) as Readyz).components.services["nats"];

describe("nats bridge in the gateway", () => {
  it("mirrors the simulator's frames into the stream and reports ok in /readyz", async () => {
    await waitFor(async () => (await readStream(nc, "EDGE")).offsets.length >= 20, "simulator frames in the stream", 15_000, 200);
    expect((await nat())?.state).toBe("ok");
  }, 30_000);

  it("shows the bridge degraded in /readyz, with the frames waiting, while NATS is down", async () => {
    await nats.nodes[0]!.stop("SIGKILL");
    const s = await waitFor(async () => {
      const x = await nat();
      return x?.state === "degraded" && x;
    }, "nats degraded in /readyz", 15_000, 100);
    expect(s.reasons.join(" ")).toContain("frames wait in the log");
    await nats.nodes[0]!.start();
    await waitFor(async () => (await nat())?.state === "ok", "nats ok again", 15_000, 100);
  }, 40_000);
});
