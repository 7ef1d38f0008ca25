// The slave's log tail is a supervised consumer: a failed log read is counted and retried, and values
// appended after it still reach a connected master (before, one read error froze every served value).
// status() reports connections, refused connections and the tail's state for the readiness document.
import { afterAll, beforeAll, expect, it } from "bun:test";
import { waitFor } from "../../helpers/index.ts";
import { failLogReads } from "../../helpers/faults.ts";
import { startSlave, type SlaveHarness } from "./harness.ts";

const TAGS = [{ tag: "t/live", driver: "plc", type: "int16", access: "R" }];
const MAP = [{ tag: "t/live", area: "holding", address: 0 }];
/** the slave's tail reads data frames only (the stand-in PLC's own follow reads cmd frames) */
const slaveReads = (o: { kinds?: readonly string[] }) => o.kinds?.length === 1 && o.kinds[0] === "data";

let h: SlaveHarness;
beforeAll(async () => {
  h = await startSlave({ tags: TAGS, slave: { map: MAP, maxConnections: 1 }, initial: { "t/live": 1 } });
});
afterAll(async () => {
  await h?.stop();
});

it("keeps serving new values to a connected master after a log read failure, and counts the failure", async () => {
  const m = await h.master();
  expect((await m.readHoldingRegisters(0, 1)).data).toEqual([1]);
  const errors: string[] = [];
  const onError = (name: string) => errors.push(name);
  h.log.on("consumerError", onError);
  const fault = failLogReads(h.log, 1, slaveReads);
  try {
    await h.publish({ "t/live": 2 }); // the tail's read of this frame fails once
    await waitFor(() => fault.thrown === 1, "the injected read failure", 10_000);
    await waitFor(async () => (await m.readHoldingRegisters(0, 1)).data[0] === 2, "value read after the retry", 10_000);
    await h.publish({ "t/live": 3 });
    await waitFor(async () => (await m.readHoldingRegisters(0, 1)).data[0] === 3, "later value served", 10_000);
  } finally {
    fault.restore();
    h.log.off("consumerError", onError);
  }
  expect(errors).toEqual(["modbus-slave"]);
  const consumer = h.slave.status().consumer!;
  expect(consumer).toMatchObject({ name: "modbus-slave", state: "running", errors: 1, lastError: "Error: injected read failure" });
  expect(h.log.consumers().some((c) => c.name === "modbus-slave" && c.errors === 1)).toBe(true);
});

it("reports degraded while its tail retries and ok once it caught up", async () => {
  // three failures in a row, each followed by a 200 ms backoff in state "retrying"
  const fault = failLogReads(h.log, 3, slaveReads);
  try {
    await h.publish({ "t/live": 4 });
    const degraded = await waitFor(() => (h.slave.status().state === "degraded" ? h.slave.status() : null), "degraded status", 10_000, 5);
    expect(degraded.reasons.join(" ")).toContain("log tail is retrying");
    expect(degraded.consumer?.state).toBe("retrying");
    await waitFor(() => h.slave.status().state === "ok", "ok again", 10_000);
  } finally {
    fault.restore();
  }
  expect(h.slave.status().consumer).toMatchObject({ state: "running", lagFrames: 0 });
  expect(h.slave.image.read(1, "holding", 0, 1)[0]).toBe(4);
});

it("reports its connections and refused connections", async () => {
  // maxConnections 1: the master of the first test holds the one allowed connection
  const before = h.slave.status();
  expect(before).toMatchObject({ state: "ok", reasons: [], port: h.port, connections: 1 });
  const extra = await h.master().catch(() => null);
  await waitFor(() => h.slave.status().refusedConnections === before.refusedConnections + 1, "refused connection counted", 10_000);
  expect(h.slave.status().connections).toBe(1);
  extra?.close(() => undefined);
});

it("reports down once stopped", async () => {
  const h2 = await startSlave({ tags: TAGS, slave: { map: MAP } });
  await h2.stop();
  expect(h2.slave.status()).toMatchObject({ state: "down", reasons: ["not listening"] });
});
