// The OPC UA client driver setting up a subscription on a server short of CPU (a large subscription on a
// loaded machine: 17,783 monitored items at load 10 flipped between Good and Bad_Timeout forever, the
// server's first publish coming later than the silence bound): the first publish after the creation has
// a bound scaled to the creation's time, so the tags come up and stay Good; while a server that hangs
// during the creation, or after it before its first publish, still ends in Bad_Timeout, an
// opcua.server_silent event and a restart, also when node-opcua's own request timeout (at least 5 s) ends
// the hung call before the driver's bound does (it ended as "cannot subscribe", Bad_CommunicationError).
// Each server runs in a child process (opcua-server-process.ts) that stops itself at the
// CreateMonitoredItems (or CreateSubscription) request for a time, or for good.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame, EventFrame, Logged } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { Child } from "../helpers/process.ts";

const TAG_COUNT = 50;
// publishing 50 ms x keep-alive count 10: silence bound 2 x 500 + 1000 = 2000 ms (drivers/opcua/subscription.ts)
const SILENCE_BOUND_MS = 2000;
// the slow server: 1.5 s to answer the create call, then 3 s more before it publishes (past the silence
// bound; within the first-publish bound of 2000 + 2 x >= 1500 = 5000 ms)
const SLOW = { create: "1500", afterCreate: "3000" };
// node-opcua's request timeout: 10 x the endpoint's timeoutMs (100), at least 5 s (its floor); with
// publishing 500 ms x keep-alive count 10 the driver's own bounds are 11 s and more, so node-opcua's ends
// the hung calls first
const REQUEST_TIMEOUT_MS = 5000;

const servers = new Map<string, Child>();
let t: TestGateway;
const dir = tempDir("edge-opcua-slow-sub-");

async function startServer(name: string, createStall: string, afterCreateStall: string, subscriptionStall = "0"): Promise<string> {
  const port = await freePort();
  const args = [String(port), String(TAG_COUNT), createStall, afterCreateStall, subscriptionStall];
  const p = new Child(`the ${name} server`, [process.execPath, join(import.meta.dir, "opcua-server-process.ts"), ...args], { stderr: "inherit" });
  servers.set(name, p);
  await p.waitForOutput((out) => out.includes("ready"), "its ready line", 30_000);
  return `opc.tcp://127.0.0.1:${port}/UA/plant`;
}

beforeAll(async () => {
  const [slow, hangAfter, hangDuring, hangItemsCall, hangSubscriptionCall] = await Promise.all([
    startServer("slow", SLOW.create, SLOW.afterCreate),
    startServer("hang-after-create", "0", "hang"),
    startServer("hang-during-create", "hang", "0"),
    startServer("hang-on-items-call", "hang", "0"),
    startServer("hang-on-subscription-call", "0", "0", "hang"),
  ]);
  const drivers = ["slow", "hangafter", "hangduring", "hangitems", "hangsubscription"];
  const tags = drivers.flatMap((d) => Array.from({ length: TAG_COUNT }, (_, i) => `  - { tag: ${d}/t${i}, driver: ${d}, type: float64, address: { nodeId: "ns=1;s=T${i}" } }`));
  const common = `samplingIntervalMs: 0, keepAliveCount: 10, pkiDir: "${join(dir.path, "pki")}", connectAttempts: 1`;
  const configOf = (d: string) => `{ ${common}, publishingIntervalMs: ${d === "hangitems" || d === "hangsubscription" ? 500 : 50} }`;
  const endpoint = (d: string, url: string, timeoutMs: number) => `  ${d}: { url: "${url}", timeoutMs: ${timeoutMs} }`;
  t = await startGateway({
    "gateway.yml": "drivers: { backoffBaseMs: 200, backoffMaxMs: 1000 }",
    "endpoints.yml": [
      "endpoints:",
      endpoint("slow", slow, 1000),
      endpoint("hangafter", hangAfter, 1000),
      endpoint("hangduring", hangDuring, 1000),
      endpoint("hangitems", hangItemsCall, 100),
      endpoint("hangsubscription", hangSubscriptionCall, 100),
    ].join("\n"),
    "drivers.yml": ["drivers:", ...drivers.map((d) => `  - { id: ${d}, type: opcua, endpoint: ${d}, config: ${configOf(d)} }`)].join("\n"),
    "variables.yml": ["tags:", ...tags].join("\n"),
  });
}, 60_000);

afterAll(async () => {
  // the hung servers first: the gateway's drivers stop without waiting on them
  for (const p of servers.values()) await p.stop("SIGKILL");
  await t?.stop();
  dir.cleanup();
}, 30_000);

const latest = (tag: string) => t.gw.ctx.log.latest().get(tag);
const tagsOf = (driver: string) => Array.from({ length: TAG_COUNT }, (_, i) => `${driver}/t${i}`);
const statusOf = (driver: string) => t.gw.ctx.drivers.status().find((d) => d.id === driver)!;

async function logged(match: (f: Logged) => boolean): Promise<Logged[]> {
  const out: Logged[] = [];
  for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["data", "event"] })) if (match(f)) out.push(f);
  return out;
}
const dataOf = async (driver: string, match: (f: DataFrame) => boolean) => (await logged((f) => f.kind === "data" && f.source === driver && match(f))) as Logged<DataFrame>[];
const silentEvents = async (driver: string) => (await logged((f) => f.kind === "event" && f.source === driver && f.type === "opcua.server_silent")) as Logged<EventFrame>[];

describe("opcua client driver: a subscription whose first publish comes late", () => {
  it("brings every tag Good and keeps it Good when the first publish comes 3 s after the items are created (silence bound 2 s)", async () => {
    const slow = tagsOf("slow");
    await waitFor(() => slow.every((x) => latest(x)?.quality === Quality.Good), "every slow tag Good", 14_000);
    // two silence bounds more: the old bound would have failed it again on every restart
    const t0 = performance.now();
    await waitFor(() => performance.now() - t0 > SILENCE_BOUND_MS, "two silence bounds", 5_000, 100);
    expect(slow.every((x) => latest(x)?.quality === Quality.Good)).toBe(true);
    const bad = await dataOf("slow", (f) => f.quality >>> 30 !== 0);
    expect(bad.map((f) => `${f.tag} ${f.quality}`)).toEqual([]);
    expect(await silentEvents("slow")).toEqual([]);
    expect(statusOf("slow").restarts).toBe(0);
  }, 15_000);
});

describe("opcua client driver: a server that hangs while the subscription is set up", () => {
  it("marks every tag Bad_Timeout and restarts when the server hangs after creating the items, before its first publish", async () => {
    const silent = await waitFor(async () => (await silentEvents("hangafter"))[0], "opcua.server_silent", 10_000);
    const reason = String(silent.data!.reason);
    expect(reason).toContain("first publish response after creating the monitored items");
    // the first-publish bound scales with the creation's time: here a fast one, so about the silence bound
    expect(Number(/bound (\d+) ms/.exec(reason)![1])).toBeLessThan(SILENCE_BOUND_MS + 1000);
    await waitFor(() => tagsOf("hangafter").every((x) => latest(x)?.quality === Quality.Bad_Timeout), "every tag Bad_Timeout", 5_000);
    await waitFor(() => statusOf("hangafter").restarts > 0, "a restart", 5_000);
    // never Good: no value came
    expect(await dataOf("hangafter", (f) => f.quality === Quality.Good)).toEqual([]);
  }, 15_000);

  it("marks every tag Bad_Timeout and restarts when the server hangs on the CreateMonitoredItems call", async () => {
    const silent = await waitFor(async () => (await silentEvents("hangduring"))[0], "opcua.server_silent", 10_000);
    expect(String(silent.data!.reason)).toContain(`no answer to CreateMonitoredItems (${TAG_COUNT} items, call 1 of 1) within ${SILENCE_BOUND_MS + TAG_COUNT} ms`);
    await waitFor(() => tagsOf("hangduring").every((x) => latest(x)?.quality === Quality.Bad_Timeout), "every tag Bad_Timeout", 5_000);
    await waitFor(() => statusOf("hangduring").restarts > 0, "a restart", 5_000);
    expect(await dataOf("hangduring", (f) => f.quality === Quality.Good)).toEqual([]);
  }, 15_000);
});

describe("opcua client driver: a set-up call that node-opcua's own request timeout ends", () => {
  it("marks every tag Bad_Timeout, tells the server silent and restarts when the request timeout ends a CreateMonitoredItems call the server hangs on", async () => {
    const silent = await waitFor(async () => (await silentEvents("hangitems"))[0], "opcua.server_silent", 15_000);
    expect(String(silent.data!.reason)).toContain(`no answer to CreateMonitoredItems (${TAG_COUNT} items, call 1 of 1) within ${REQUEST_TIMEOUT_MS} ms (the client's request timeout)`);
    await waitFor(() => tagsOf("hangitems").every((x) => latest(x)?.quality === Quality.Bad_Timeout), "every tag Bad_Timeout", 5_000);
    await waitFor(() => statusOf("hangitems").restarts > 0, "a restart", 5_000);
    expect(await dataOf("hangitems", (f) => f.quality !== Quality.Bad_Timeout)).toEqual([]);
  }, 20_000);

  it("marks every tag Bad_Timeout, tells the server silent and restarts when the request timeout ends a CreateSubscription call the server hangs on", async () => {
    const silent = await waitFor(async () => (await silentEvents("hangsubscription"))[0], "opcua.server_silent", 15_000);
    expect(String(silent.data!.reason)).toContain(`no answer to CreateSubscription within ${REQUEST_TIMEOUT_MS} ms (the client's request timeout)`);
    await waitFor(() => tagsOf("hangsubscription").every((x) => latest(x)?.quality === Quality.Bad_Timeout), "every tag Bad_Timeout", 5_000);
    await waitFor(() => statusOf("hangsubscription").restarts > 0, "a restart", 5_000);
    expect(await dataOf("hangsubscription", (f) => f.quality !== Quality.Bad_Timeout)).toEqual([]);
  }, 20_000);
});
