// The NATS bridge against a real nats-server (JetStream, single node): frames arrive in order on the
// documented subjects, a server crash and restart loses and duplicates nothing, /readyz shows the outage.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { exactlyOnce, NatsCluster, readStream } from "../../helpers/nats.ts";
import { headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { batchSubject, decodeTag, encodeTag, frameSubject, messageId } from "../../../bridges/nats/subjects.ts";
import { parseNatsConfig, provisionStream } from "../../../bridges/nats/index.ts";
import { PayloadEncoder } from "../../../schemas/wire.ts";
import type { DataFrame, Logged } from "../../../schemas/frames.ts";
import type { EventLog } from "../../../storage/index.ts";
import { frames, makeBridge, natsSection, openLog } from "./harness.ts";

let nats: NatsCluster;
let nc: NatsConnection;
const dirs: { cleanup(): void }[] = [];

beforeAll(async () => {
  nats = await NatsCluster.single();
  nc = await nats.connect();
});
afterAll(async () => {
  await nc.close();
  await nats.close();
  for (const d of dirs) d.cleanup();
});
afterEach(async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete("EDGE").catch(() => undefined);
});

function tmpLog(): string {
  const d = tempDir("edge-nats-log-");
  dirs.push(d);
  return join(d.path, "log.duckdb");
}

describe("nats subjects", () => {
  it("encodes a tag's '/' as subject tokens and escapes what NATS forbids, reversibly", () => {
    expect(encodeTag("line1/press/temp")).toBe("line1.press.temp");
    expect(encodeTag("a.b c*>/x")).toBe("a~2Eb~20c~2A~3E.x");
    for (const t of ["line1/press/temp", "a.b c*>/x", "ü/€", "/lead", "x//y"]) expect(decodeTag(encodeTag(t))).toBe(t);
    expect(frameSubject("edge", "acme", "gw 7", "l/t")).toBe("edge.acme.gw~207.data.l.t");
    expect(batchSubject("edge", "acme", "gw-7")).toBe("edge.acme.gw-7.batch");
  });
});

/** Publishes offsets first..last of `log` as a previous process of gateway gw-1 would have. */
async function publishAsPreviousProcess(log: EventLog, first: number, last: number): Promise<void> {
  const page: Logged<DataFrame>[] = [];
  for await (const f of log.read({ from: first, to: last })) page.push(f as Logged<DataFrame>);
  const h = headers();
  h.set("Edge-First", String(first));
  h.set("Edge-Last", String(last));
  h.set("Content-Type", "application/json");
  const body = new PayloadEncoder("json").batch("gw-1", page, first, last);
  await jetstream(nc).publish(batchSubject("edge", "default", "gw-1"), body, { msgID: messageId("gw-1", first, last), headers: h });
}

describe("nats bridge (single node)", () => {
  it("after a restart, publishes again exactly the messages a previous process stored past the cursor, and fills their gaps", async () => {
    const log = await openLog(tmpLog());
    await log.append(frames(1000));
    await provisionStream(await jetstreamManager(nc), parseNatsConfig(natsSection(nats.servers)));
    // the previous process: cursor stored at 0, then [1-100] stored, [101-250] failing (an election) when
    // it died, [251-300] and a short [301-337] (cut by the idle flush) already stored
    for (const [a, b] of [[1, 100], [251, 300], [301, 337]] as const) await publishAsPreviousProcess(log, a, b);
    const bridge = makeBridge(log, nats.servers);
    await bridge.start();
    await waitFor(() => bridge.publisher.acked >= 1000, "1,000 frames acknowledged");
    const got = await readStream(nc, "EDGE");
    expect(exactlyOnce(got.offsets, 1000)).toBe("");
    await bridge.stop();
    await log.close();
  });

  it("publishes every frame once, in offset order, in batches of many frames", async () => {
    const log = await openLog(tmpLog());
    await log.append(frames(5000));
    const bridge = makeBridge(log, nats.servers);
    await bridge.start();
    await log.append(frames(5000, 5000));
    await waitFor(() => bridge.publisher.acked >= 10_000, "10,000 frames acknowledged", 15_000);
    const got = await readStream(nc, "EDGE");
    expect(exactlyOnce(got.offsets, 10_000)).toBe("");
    expect(got.offsets).toEqual([...got.offsets].sort((a, b) => a - b));
    expect(got.messages).toBeLessThan(200); // batches, not one message per frame
    expect(bridge.status().state).toBe("ok");
    await bridge.stop();
    await log.close();
  });

  it("publishes one frame per message on the tag's subject when batch.maxFrames is 1", async () => {
    const log = await openLog(tmpLog());
    await log.append(frames(20));
    const bridge = makeBridge(log, nats.servers, { batch: { maxFrames: 1 } });
    await bridge.start();
    await waitFor(() => bridge.publisher.acked >= 20, "20 frames acknowledged");
    const jsm = await jetstreamManager(nc);
    const m = await jsm.streams.getMessage("EDGE", { last_by_subj: "edge.default.gw-1.data.line1.press.>" });
    expect(m?.subject).toBe("edge.default.gw-1.data.line1.press.t9");
    expect(m?.header?.get("Nats-Msg-Id")).toBe("gw-1:20-20");
    expect(exactlyOnce((await readStream(nc, "EDGE")).offsets, 20)).toBe("");
    await bridge.stop();
    await log.close();
  });

  it("replays an outage in order after the server is killed and restarted: no gap, no duplicate", async () => {
    const log = await openLog(tmpLog());
    const bridge = makeBridge(log, nats.servers);
    await bridge.start();
    const ingest = setInterval(() => void log.append(frames(100)).catch(() => undefined), 5);
    try {
      await waitFor(() => bridge.publisher.acked >= 2000, "frames flowing before the crash");
      await nats.nodes[0]!.stop("SIGKILL");
      const cursorAtCrash = bridge.publisher.acked;
      await waitFor(() => log.head > cursorAtCrash + 2000, "frames piling up in the log during the outage");
      // the client learns of the closed socket by an event of its own: at 20,000 frames/s the 2000 frames
      // can pile up before a loaded machine has run it (seen once running the suite beside other work)
      await waitFor(() => bridge.status().state === "degraded", "the bridge degraded while NATS is down", 10_000);
      const ready = bridge.status();
      expect(ready.reasons.join(" ")).toContain("frames wait in the log");
      await nats.nodes[0]!.start();
    } finally {
      clearInterval(ingest);
    }
    await log.append(frames(1)); // appends commit in order: after this one, the head stays put
    await waitFor(() => bridge.publisher.acked >= log.head, "the outage replayed", 20_000);
    const got = await readStream(nc, "EDGE");
    expect(exactlyOnce(got.offsets, log.head)).toBe("");
    await bridge.stop();
    await log.close();
  }, 40_000);
});
