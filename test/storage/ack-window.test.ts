// The acknowledged window's contract (storage/ack-window.ts), shared by the MQTT uplink and the NATS
// bridge: the cursor moves only over the contiguous acknowledged prefix whatever order the acks come in,
// a failed message rewinds the reader to the acknowledged offset, a gap (a message never answered) is
// never skipped, the window holds at most its room, and the status document tells why it is degraded.
import { afterAll, afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame } from "../../schemas/index.ts";
import { AckWindow, windowStatus, type WindowEntry } from "../../storage/ack-window.ts";
import { EventLog, Rewind, type ConsumerStatus } from "../../storage/index.ts";
import { slowCursorStores } from "../helpers/faults.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

const frame = (i: number): DataFrame => ({ kind: "data", tag: `t${i}`, value: i, ts: 1_700_000_000_000_000 + i, quality: 0, source: "test" });
const frames = (from: number, n: number) => Array.from({ length: n }, (_, k) => frame(from + k));

// a log file of its own for each test, all in one temp dir
const dir = tempDir("edge-ack-window-");
afterAll(() => dir.cleanup());
let log: EventLog;
let tests = 0;
beforeEach(async () => {
  log = await EventLog.open({ path: join(dir.path, `log-${++tests}.duckdb`), maxDelayMs: 1, tailFrames: 1000 });
});
afterEach(() => log.close());

type Msg = WindowEntry;

/**
 * A publisher as small as the window allows: one message per frame, published into `sent` (the test
 * answers them with settle), frames whose value `skip` picks have nothing to publish; a failure rewinds.
 */
function publisher(name: string, opts: { room?: number; skip?: (value: number) => boolean } = {}) {
  const room = opts.room ?? 100;
  const sent: Msg[] = [];
  const reads: number[] = [];
  const failures: { offset: number; first: boolean }[] = [];
  /** for each message published: how far past the stored cursor it went (what a crash would re-send) */
  const pastStored: number[] = [];
  let succeeded = 0;
  const w: AckWindow<Msg> = new AckWindow<Msg>(log, {
    name,
    pageSize: 100,
    commitEveryMs: 10,
    maxInflight: room,
    maxFrames: 1,
    retry: { initialMs: 10, maxMs: 50 },
    handler: async (page, ctx) => {
      for (const f of page) {
        reads.push(f.offset);
        const m: Msg = { first: f.offset, last: f.offset, settled: false, error: null };
        if (f.kind === "data" && opts.skip?.(f.value as number)) {
          w.skip(m);
          continue;
        }
        if (!(await w.waitForRoom(ctx.signal, f.offset, () => room))) throw new Rewind();
        w.push(m);
        sent.push(m);
        pastStored.push(m.last - w.consumer.storedUpTo);
      }
    },
    idle: { afterMs: () => null, run: () => undefined },
    beforePass: async (_from, ctx) => {
      const from = w.acked;
      if (!(await w.settled(ctx.signal))) return;
      w.clear();
      if (w.acked !== from) throw new Rewind();
      w.takeFailure();
    },
    succeeded: () => void succeeded++,
    failed: (m, _err, first) => {
      failures.push({ offset: m.first, first });
      w.consumer.rewind();
    },
  });
  w.start();
  /** the latest message published for `offset` */
  const msg = (offset: number): Msg => {
    const m = sent.findLast((x) => x.first === offset);
    if (!m) throw new Error(`nothing published for offset ${offset}`);
    return m;
  };
  return { w, sent, reads, failures, pastStored, msg, succeeded: () => succeeded };
}

describe("acknowledged window", () => {
  it("moves the cursor only over the contiguous acknowledged prefix when acks come out of order, and stores it at stop", async () => {
    const p = publisher("ack-order");
    await log.append(frames(1, 5));
    await waitFor(() => p.sent.length === 5, "5 messages in flight");
    expect(p.w.inflight).toBe(5);
    p.w.settle(p.msg(3), null);
    p.w.settle(p.msg(5), null);
    expect(p.w.acked).toBe(0);
    p.w.settle(p.msg(1), null);
    expect(p.w.acked).toBe(1);
    p.w.settle(p.msg(2), null);
    expect(p.w.acked).toBe(3);
    expect(p.w.inflight).toBe(1);
    p.w.settle(p.msg(4), null);
    expect(p.w.acked).toBe(5);
    expect(p.w.inflight).toBe(0);
    expect(p.succeeded()).toBe(5);
    await p.w.stop();
    expect(log.cursor("ack-order")).toBe(5);
  });

  it("ignores a second answer to the same message (a late callback after a refusal)", async () => {
    const p = publisher("ack-twice");
    await log.append(frames(1, 2));
    await waitFor(() => p.sent.length === 2, "2 messages in flight");
    p.w.settle(p.msg(1), null);
    p.w.settle(p.msg(1), new Error("late"));
    expect(p.failures).toEqual([]);
    expect(p.succeeded()).toBe(1);
    expect(p.w.acked).toBe(1);
    await p.w.stop();
  });

  it("keeps the cursor before a failed message, rewinds once the window settled, and reads again from the acknowledged offset", async () => {
    const p = publisher("ack-fail");
    await log.append(frames(1, 4));
    await waitFor(() => p.sent.length === 4, "4 messages in flight");
    p.w.settle(p.msg(1), null);
    p.w.settle(p.msg(2), new Error("refused"));
    p.w.settle(p.msg(4), null);
    expect(p.w.acked).toBe(1);
    // the acknowledged message after the failure does not move the cursor, and nothing is read again
    // while message 3 is in flight (the window settles first)
    expect(p.reads).toEqual([1, 2, 3, 4]);
    p.w.settle(p.msg(3), new Error("refused too"));
    expect(p.failures).toEqual([
      { offset: 2, first: true },
      { offset: 3, first: false },
    ]);
    await waitFor(() => p.sent.length === 7, "offsets 2-4 published again");
    expect(p.reads).toEqual([1, 2, 3, 4, 2, 3, 4]);
    expect(p.w.acked).toBe(1);
    for (const o of [2, 3, 4]) p.w.settle(p.msg(o), null);
    expect(p.w.acked).toBe(4);
    await p.w.stop();
    expect(log.cursor("ack-fail")).toBe(4);
  });

  it("never skips a gap: a message never answered holds the cursor, is counted in flight at stop, and is read again after a restart", async () => {
    let p = publisher("ack-gap");
    await log.append(frames(1, 4));
    await waitFor(() => p.sent.length === 4, "4 messages in flight");
    for (const o of [1, 3, 4]) p.w.settle(p.msg(o), null);
    expect(p.w.acked).toBe(1);
    expect(p.w.inflight).toBe(1);
    expect(p.w.oldestInflight()?.first).toBe(2);
    expect(await p.w.drain(50)).toBe(1);
    await p.w.stop();
    expect(log.cursor("ack-gap")).toBe(1);
    p = publisher("ack-gap");
    await waitFor(() => p.sent.length === 3, "offsets 2-4 published again after the restart");
    expect(p.reads).toEqual([2, 3, 4]);
    await p.w.stop();
  });

  it("moves the cursor over a run with nothing to publish only once what precedes it is acknowledged", async () => {
    const p = publisher("ack-skip", { skip: (v) => v === 2 || v === 3 });
    await log.append(frames(1, 4));
    await waitFor(() => p.sent.length === 2, "offsets 1 and 4 published");
    expect(p.w.acked).toBe(0);
    p.w.settle(p.msg(1), null);
    expect(p.w.acked).toBe(3);
    p.w.settle(p.msg(4), null);
    expect(p.w.acked).toBe(4);
    await p.w.stop();
  });

  it("holds the reader at the window's room until an ack makes room, and drains the rest at stop", async () => {
    const p = publisher("ack-room", { room: 2 });
    await log.append(frames(1, 5));
    await waitFor(() => p.sent.length === 2, "2 messages in flight");
    await Bun.sleep(50); // nothing is awaited here: the reader must stay held for a while
    expect(p.sent.length).toBe(2);
    p.w.settle(p.msg(1), null);
    await waitFor(() => p.sent.length === 3, "a third message after one ack");
    const drained = p.w.drain(2000);
    p.w.settle(p.msg(2), null);
    p.w.settle(p.msg(3), null);
    expect(await drained).toBe(0);
    // draining leaves no room: nothing more is published, the acknowledged prefix is the cursor
    expect(p.sent.length).toBe(3);
    await p.w.stop();
    expect(log.cursor("ack-room")).toBe(3);
  });

  it("publishes nothing that would go more than a window and a quarter past the stored cursor while storing is slow, then goes on", async () => {
    // window 100 messages of 1 frame, stored every 12: at most 100 + 2 x 12 frames past the stored cursor
    const stores = slowCursorStores(log, 150);
    const p = publisher("ack-bound");
    const acker = setInterval(() => {
      for (const m of p.sent) if (!m.settled) p.w.settle(m, null);
    }, 2);
    try {
      await log.append(frames(1, 400));
      await waitFor(() => p.w.acked === 400, "all 400 acknowledged", 10_000);
    } finally {
      clearInterval(acker);
    }
    expect(Math.max(...p.pastStored)).toBeLessThanOrEqual(124);
    // it waited for stores, and did not wait for good
    expect(stores.slowed).toBeGreaterThan(2);
    expect(p.sent.length).toBe(400);
    await p.w.stop();
    expect(log.cursor("ack-bound")).toBe(400);
  });
});

describe("windowStatus", () => {
  const consumer = (o: Partial<ConsumerStatus>): ConsumerStatus => ({ name: "c", state: "running", durable: true, position: 7, head: 7, lagFrames: 0, lagSeconds: 0, errors: 0, lastError: null, lastErrorAt: null, since: 0, ...o });

  it("is ok and shows the window's figures while connected with nothing waiting", () => {
    const s = windowStatus({ connected: true, connectionSince: 0, consumer: consumer({}), inflight: 2, peer: "broker x", reasons: [null, false], retrying: "reading the log" });
    expect(s).toEqual({ state: "ok", reasons: [], connected: true, since: "1970-01-01T00:00:00.000Z", lagFrames: 0, lagSeconds: 0, inflight: 2, cursor: 7, consumer: "running", errors: 0, lastError: null });
  });

  it("is degraded naming the peer and the frames waiting, then the publisher's reasons, then the reader's retry", () => {
    const s = windowStatus({ connected: false, connectionSince: 0, consumer: consumer({ state: "retrying", lagFrames: 10, lagSeconds: 2.5, lastError: "Error: boom" }), inflight: 0, peer: "NATS n:4222", reasons: ["commands off"], retrying: "reading the log" });
    expect(s.state).toBe("degraded");
    expect(s.reasons).toEqual(["NATS n:4222 not connected since 1970-01-01T00:00:00.000Z: 10 frames wait in the log (oldest 2.5 s)", "commands off", "reading the log failed, retrying: Error: boom"]);
  });
});
