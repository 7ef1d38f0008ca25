// The OPC UA client driver against a plant server that misbehaves, run in a child process
// (opcua-server-process.ts) so that it can hang: tags whose node is missing, of a DataType the tag
// cannot hold, or not monitorable are refused with a Bad quality and an event; values outside the
// tag type's range are Bad_OutOfRange; writes carry the code of what happened; a server stopped
// with SIGSTOP turns every tag Bad within twice the silence bound, and Good again after SIGCONT.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { OPCUAClient, StatusCodes } from "node-opcua";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { OpcuaClientConfig } from "../../drivers/opcua/config.ts";
import { subscribe } from "../../drivers/opcua/subscription.ts";
import { qualityName, type DataFrame, type EventFrame, type Logged } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { Child } from "../helpers/process.ts";

// EDGE_TEST_UA_TAGS=2000 measures the size (about 20 s more for the setup)
const TAG_COUNT = Number(process.env.EDGE_TEST_UA_TAGS ?? 300);
// subscription: publishing 50 ms x keep-alive count 10 -> keep-alive every 500 ms; silence bound
// 2 x 500 + 1000 = 2000 ms (drivers/opcua/subscription.ts). Poll: silenceTimeoutMs 2000 (reads are
// bounded by the endpoint's timeoutMs, 1000).
const SILENCE_BOUND_MS = 2000;

let plant: Child;
let t: TestGateway;
let plantUrl = "";
const dir = tempDir("edge-opcua-faults-");

async function startPlant(port: number): Promise<Child> {
  const p = new Child("the plant server", [process.execPath, join(import.meta.dir, "opcua-server-process.ts"), String(port), String(TAG_COUNT)], { stderr: "inherit" });
  await p.waitForOutput((out) => out.includes("ready"), "its ready line", 60_000);
  return p;
}

beforeAll(async () => {
  const port = await freePort();
  plant = await startPlant(port);
  const url = (plantUrl = `opc.tcp://127.0.0.1:${port}/UA/plant`);
  const common = `pkiDir: "${join(dir.path, "pki")}", reconnectMaxDelayMs: 500, connectAttempts: 1`;
  const tTags = (driver: string) => Array.from({ length: TAG_COUNT }, (_, i) => `  - { tag: ${driver}/t${i}, driver: ${driver}, type: float64, address: { nodeId: "ns=1;s=T${i}" } }`);
  t = await startGateway({
    "gateway.yml": "drivers: { backoffBaseMs: 200, backoffMaxMs: 1000 }",
    "endpoints.yml": `endpoints:\n  plant: { url: "${url}", timeoutMs: 1000 }\n`,
    "drivers.yml": [
      "drivers:",
      `  - { id: sub, type: opcua, endpoint: plant, config: { samplingIntervalMs: 0, publishingIntervalMs: 50, keepAliveCount: 10, ${common} } }`,
      // its own session (the key differs by reconnectMaxDelayMs): each driver detects the hang itself
      `  - { id: poll, type: opcua, endpoint: plant, config: { mode: poll, intervalMs: 100, silenceTimeoutMs: 2000, ${common.replace("500", "600")} } }`,
    ].join("\n"),
    "variables.yml": [
      "tags:",
      ...tTags("sub"),
      ...tTags("poll"),
      '  - { tag: sub/big, driver: sub, type: int16, address: { nodeId: "ns=1;s=Big" } }',
      '  - { tag: sub/small, driver: sub, type: int16, address: { nodeId: "ns=1;s=Small" } }',
      '  - { tag: sub/ratio, driver: sub, type: bool, address: { nodeId: "ns=1;s=Ratio" } }',
      '  - { tag: sub/missing, driver: sub, type: float64, access: RW, address: { nodeId: "ns=1;s=NoSuchNode" } }',
      '  - { tag: sub/hidden, driver: sub, type: float64, address: { nodeId: "ns=1;s=Hidden" } }',
      '  - { tag: sub/readonly, driver: sub, type: float64, access: RW, address: { nodeId: "ns=1;s=ReadOnly" } }',
      '  - { tag: sub/setpoint, driver: sub, type: float64, access: RW, address: { nodeId: "ns=1;s=Setpoint" } }',
      '  - { tag: sub/weight, driver: sub, type: float32, access: RW, address: { nodeId: "ns=1;s=Weight" } }',
      '  - { tag: poll/big, driver: poll, type: int16, address: { nodeId: "ns=1;s=Big" } }',
      '  - { tag: poll/ratio, driver: poll, type: bool, address: { nodeId: "ns=1;s=Ratio" } }',
      '  - { tag: poll/missing, driver: poll, type: float64, address: { nodeId: "ns=1;s=NoSuchNode" } }',
      // every poll logged (report by exception off): a hung server must not log it Bad at every poll and retry
      '  - { tag: poll/every, driver: poll, type: float64, reportByException: false, address: { nodeId: "ns=1;s=T0" } }',
    ].join("\n"),
  });
}, 60_000);

afterAll(async () => {
  plant?.signal("SIGCONT");
  await t?.stop();
  await plant?.stop("SIGKILL");
  dir.cleanup();
}, 30_000);

const latest = (tag: string) => t.gw.ctx.log.latest().get(tag);
const tagsOf = (driver: string) => Array.from({ length: TAG_COUNT }, (_, i) => `${driver}/t${i}`);

async function dataOf(tag: string, from: number): Promise<Logged<DataFrame>[]> {
  const out: Logged<DataFrame>[] = [];
  for await (const f of t.gw.ctx.log.read({ from, kinds: ["data"] })) if (f.kind === "data" && f.tag === tag) out.push(f as Logged<DataFrame>);
  return out;
}

async function events(type: string): Promise<Logged<EventFrame>[]> {
  const out: Logged<EventFrame>[] = [];
  for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === type) out.push(f as Logged<EventFrame>);
  return out;
}

const write = (tag: string, value: number) => t.gw.ctx.commands.execute({ tag, value, origin: "rule", actor: "test", tenant: "default" }, 10_000);

describe("opcua client driver: tags the server cannot serve as configured", () => {
  it("refuses a bool tag on a Double node with Bad_TypeMismatch and an event naming the tag, in both modes", async () => {
    await waitFor(() => latest("sub/ratio") && latest("poll/ratio"), "a frame for the ratio tags", 20_000);
    for (const tag of ["sub/ratio", "poll/ratio"]) expect(latest(tag)).toMatchObject({ value: null, quality: Quality.Bad_TypeMismatch });
    // (an empty list is truthy: wait for a non-empty one; the event follows the frame by a read of the log)
    const refused = await waitFor(async () => {
      const evs = (await events("opcua.tag_refused")).filter((e) => e.tag === "sub/ratio");
      return evs.length > 0 && evs;
    }, "the refusal event");
    expect(String(refused[0]!.data!.reason)).toContain("tag 'sub/ratio'");
    expect(String(refused[0]!.data!.reason)).toContain("Double");
  }, 30_000);

  it("marks an int16 tag Bad_OutOfRange when the server's UInt32 holds 4294967295, and Good for a value that fits", async () => {
    const inRange = (tag: string) => latest(tag)?.quality === Quality.Bad_OutOfRange;
    await waitFor(() => inRange("sub/big") && inRange("poll/big") && latest("sub/small"), "Bad_OutOfRange for the UInt32 tags", 20_000);
    expect(latest("sub/big")!.value).toBeNull();
    expect(latest("sub/small")).toMatchObject({ value: 5, quality: Quality.Good });
  }, 30_000);

  it("marks a tag on a NodeId that does not exist Bad_NodeIdUnknown with an event, in subscription mode as in polling", async () => {
    await waitFor(() => latest("sub/missing") && latest("poll/missing"), "frames for the missing node", 20_000);
    expect(latest("sub/missing")!.quality).toBe(Quality.Bad_NodeIdUnknown);
    expect(latest("poll/missing")!.quality).toBe(Quality.Bad_NodeIdUnknown);
    const evs = await waitFor(async () => {
      const all = await events("opcua.tag_refused");
      return all.some((e) => e.tag === "sub/missing") && all;
    }, "the refusal event of sub/missing");
    expect(evs.some((e) => e.tag === "sub/missing" && String(e.data!.reason).includes("NoSuchNode"))).toBe(true);
  }, 30_000);

  it("logs the server's Bad status for a node it will not let be read (BadNotReadable), not waiting for data", async () => {
    const f = await waitFor(() => latest("sub/hidden"), "a frame for the hidden node", 20_000);
    expect(f).toMatchObject({ value: null, quality: StatusCodes.BadNotReadable.value });
  }, 30_000);

  it("checks each monitored item's creation result: a node the server does not know is refused with BadNodeIdUnknown", async () => {
    const client = OPCUAClient.create({ endpointMustExist: false, connectionStrategy: { maxRetry: 0 } });
    await client.connect(plantUrl);
    try {
      const session = await client.createSession();
      const cfg = TypeValue.Default(OpcuaClientConfig, { publishingIntervalMs: 50 }) as OpcuaClientConfig;
      // one item per call: the refused item is told by its index in the whole list, not in its call
      const s = await subscribe({ session, client }, cfg, ["ns=1;s=T0", "ns=1;s=NoSuchNode"], 1, () => undefined);
      expect(s.refused).toEqual([{ index: 1, quality: Quality.Bad_NodeIdUnknown, reason: expect.stringContaining("ns=1;s=NoSuchNode") }]);
      await s.subscription.terminate();
      await session.close();
    } finally {
      await client.disconnect();
    }
  }, 30_000);
});

describe("opcua client driver: write results carry a code", () => {
  it("acknowledges a write the server refuses (read-only node) with device_error and the StatusCode's name", async () => {
    await waitFor(() => t.gw.ctx.drivers.status().find((d) => d.id === "sub")?.state === "Active", "sub active", 20_000);
    const { ack } = await write("sub/readonly", 3);
    expect(ack).toMatchObject({ ok: false, code: "device_error" });
    expect(ack!.error).toContain("BadNotWritable");
  }, 30_000);

  it("acknowledges a write to a node that does not exist with device_address_error", async () => {
    const { ack } = await write("sub/missing", 3);
    expect(ack).toMatchObject({ ok: false, code: "device_address_error" });
  }, 30_000);

  it("refuses a float32 write that would lose its value (1e-50 would become 0) with refused_out_of_range, and writes 0.1", async () => {
    const { ack } = await write("sub/weight", 1e-50);
    expect(ack).toMatchObject({ ok: false, code: "refused_out_of_range" });
    const ok = await write("sub/weight", 0.1);
    expect(ok.ack).toMatchObject({ ok: true, code: "ok" });
  }, 30_000);
});

describe("opcua client driver: a hung server", () => {
  // last: it stops the server
  it("marks every tag Bad within twice the silence bound when the server is stopped (SIGSTOP), and Good again after SIGCONT", async () => {
    const watched = [...tagsOf("sub"), ...tagsOf("poll"), "sub/small"];
    await waitFor(() => watched.every((x) => latest(x)?.quality === Quality.Good), "every tag Good first", 30_000);
    const restartsBefore = t.gw.ctx.drivers.status().find((d) => d.id === "sub")!.restarts;
    const pollRestartsBefore = t.gw.ctx.drivers.status().find((d) => d.id === "poll")!.restarts;
    const stoppedFrom = t.gw.ctx.log.head + 1;
    plant.signal("SIGSTOP");
    const t0 = performance.now();
    // a write while the server is hung: its outcome cannot be known
    const pendingWrite = write("sub/setpoint", 7);
    await waitFor(() => watched.every((x) => (latest(x)?.quality ?? 0) >>> 30 === 2), "every tag Bad", 2 * SILENCE_BOUND_MS + 2000);
    const badAfterMs = performance.now() - t0;
    console.log(`every tag (${watched.length}) Bad ${Math.round(badAfterMs)} ms after SIGSTOP (silence bound ${SILENCE_BOUND_MS} ms)`);
    expect(badAfterMs).toBeLessThan(2 * SILENCE_BOUND_MS);
    for (const x of watched) expect(latest(x)!.quality).toBe(Quality.Bad_Timeout);
    // polls and restarts that fail the same way add nothing: one Bad frame per reason
    await waitFor(() => t.gw.ctx.drivers.status().find((d) => d.id === "poll")!.restarts > pollRestartsBefore, "the poll driver restarted", 10_000);
    const everyBad = (await dataOf("poll/every", stoppedFrom)).filter((f) => f.quality >>> 30 === 2).map((f) => qualityName(f.quality));
    expect(everyBad.filter((q, i) => q === everyBad[i - 1])).toEqual([]);
    expect((await pendingWrite).ack).toMatchObject({ ok: false, code: "timeout_outcome_unknown" });
    expect((await events("opcua.server_silent")).length).toBeGreaterThan(0);
    plant.signal("SIGCONT");
    const t1 = performance.now();
    await waitFor(() => watched.every((x) => latest(x)?.quality === Quality.Good), "every tag Good again after SIGCONT", 30_000);
    console.log(`every tag Good again ${Math.round(performance.now() - t1)} ms after SIGCONT`);
    expect(t.gw.ctx.drivers.status().find((d) => d.id === "sub")!.restarts).toBeGreaterThan(restartsBefore);
  }, 60_000);
});
