// The log consumer's contract: replay then tail, durable cursors, retries after read and handler errors,
// status and lag, manual progress and rewinds, effects committed with the cursor.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame, Frame, Logged } from "../../schemas/index.ts";
import { consume, EventLog, LogConsumer, Rewind } from "../../storage/index.ts";
import { failLogReads } from "../helpers/faults.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { delay } from "../../storage/time.ts";

const frame = (i: number): DataFrame => ({ kind: "data", tag: `t${i % 5}`, value: i, ts: 1_700_000_000_000_000 + i, quality: 0, source: "test" });
const frames = (from: number, n: number) => Array.from({ length: n }, (_, k) => frame(from + k));
const fast = { initialMs: 10, maxMs: 50 };

let dir: ReturnType<typeof tempDir>;
let path: string;
let log: EventLog;
beforeEach(async () => {
  dir = tempDir();
  path = join(dir.path, "log.duckdb");
  log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 1000 });
});
afterEach(async () => {
  await log.close();
  dir.cleanup();
});

describe("log consumer", () => {
  it("replays from its stored cursor, follows the tail, and resumes after a restart where it stopped", async () => {
    await log.append(frames(0, 30));
    const seen: number[] = [];
    let c = consume(log, { name: "c1", retry: fast, pageSize: 7, handler: (page) => void seen.push(...page.map((f) => f.offset)) });
    await log.append(frames(30, 20));
    await waitFor(() => seen.length === 50, "50 frames");
    await c.stop();
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(log.cursor("c1")).toBe(50);
    await log.append(frames(50, 5));
    await log.close();
    log = await EventLog.open({ path, maxDelayMs: 1 });
    const after: number[] = [];
    c = consume(log, { name: "c1", retry: fast, handler: (page) => void after.push(...page.map((f) => f.offset)) });
    await waitFor(() => after.length === 5, "5 frames after restart");
    await c.stop();
    expect(after).toEqual([51, 52, 53, 54, 55]);
  });

  it("keeps delivering, in order and without loss, after its log read throws once", async () => {
    const seen: number[] = [];
    const c = consume(log, { name: "c2", from: "head", retry: fast, handler: (page) => void seen.push(...page.map((f) => f.offset)) });
    await log.append(frames(0, 10));
    await waitFor(() => seen.length === 10, "first 10");
    const fault = failLogReads(log, 1);
    await log.append(frames(10, 10));
    await waitFor(() => seen.length === 20, "20 frames after the injected failure");
    fault.restore();
    expect(fault.thrown).toBe(1);
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const s = c.status();
    expect(s.errors).toBe(1);
    expect(s.lastError).toContain("injected read failure");
    expect(s.state).toBe("running");
    await c.stop();
    expect(c.status().state).toBe("stopped");
  });

  it("retries a page whose handler threw, from the last handled offset, and reports retrying meanwhile", async () => {
    await log.append(frames(0, 10));
    let failures = 3;
    const seen: number[] = [];
    const states: string[] = [];
    const c = new LogConsumer(log, {
      name: "c3",
      from: 1,
      pageSize: 5,
      retry: { initialMs: 30, maxMs: 30 },
      handler: (page) => {
        if (page[0]!.offset === 6 && failures-- > 0) {
          states.push(c.status().state);
          throw new Error("handler failed");
        }
        seen.push(...page.map((f) => f.offset));
      },
    }).start();
    await waitFor(() => c.status().state === "retrying", "retrying state");
    await waitFor(() => seen.length === 10, "all 10");
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(c.status().errors).toBe(3);
    await c.stop();
  });

  it("counts lag in frames and in seconds from the oldest unhandled frame", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const c = consume(log, { name: "c4", from: "head", handler: () => gate });
    await log.append(frames(0, 10));
    await Bun.sleep(300);
    const s = c.status();
    expect(s.lagFrames).toBe(10);
    expect(s.lagSeconds).toBeGreaterThanOrEqual(0.25);
    expect(s.lagSeconds).toBeLessThan(5);
    release();
    await waitFor(() => c.status().lagFrames === 0, "caught up");
    expect(c.status().lagSeconds).toBe(0);
    await c.stop();
  });

  it("moves over frames of kinds it does not read, so a filtered consumer shows no lag", async () => {
    const c = consume(log, { name: "c5", from: "head", kinds: ["cmd"], handler: () => undefined });
    await log.append(frames(0, 20));
    await waitFor(() => c.status().position === 20, "position 20");
    expect(c.status().lagFrames).toBe(0);
    await c.stop();
  });

  it("with manual progress, stores only what the handler acknowledged, and rewinds to it", async () => {
    await log.append(frames(0, 20));
    const deliveries: number[][] = [];
    let rewound = false;
    const c = consume(log, {
      name: "c6",
      progress: "manual",
      pageSize: 10,
      retry: fast,
      handler: (page, ctx) => {
        deliveries.push(page.map((f) => f.offset));
        if (page[0]!.offset === 1) ctx.handled(5);
        if (page[0]!.offset === 11 && !rewound) {
          rewound = true;
          throw new Rewind();
        }
        if (page[0]!.offset === 6) ctx.handled(page[page.length - 1]!.offset);
      },
    });
    await waitFor(() => c.handledUpTo === 15, "handled up to 15");
    await c.stop();
    expect(deliveries[0]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(deliveries[1]).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(deliveries[2]![0]).toBe(6); // rewound to the acknowledged offset
    expect(c.status().errors).toBe(0); // a rewind is not an error
    expect(log.cursor("c6")).toBe(15);
  });

  it("commits its effects together with its cursor", async () => {
    const c = consume(log, {
      name: "c7",
      kinds: ["data"],
      handler: async (page, ctx) => {
        const out: Frame[] = page.filter((f) => (f as DataFrame).tag === "t0").map((f) => ({ kind: "event", type: "seen", source: "c7", ts: f.ts, data: { of: f.offset } }));
        await ctx.commit(out, page[page.length - 1]!.offset);
      },
    });
    await log.append(frames(0, 10));
    await waitFor(() => log.cursor("c7") >= 10, "cursor 10");
    await c.stop();
    const events: Logged[] = [];
    for await (const f of log.read({ from: 1, kinds: ["event"] })) events.push(f);
    expect(events.map((e) => (e as Logged & { data: { of: number } }).data.of)).toEqual([1, 6]);
  });

  it("calls its idle hook when no frame arrives in time, and stops when the log closes", async () => {
    let idles = 0;
    let want: number | null = 50;
    const c = consume(log, {
      name: "c8",
      from: "head",
      handler: () => undefined,
      idle: { afterMs: () => want, run: () => void (idles++, (want = null)) },
    });
    await waitFor(() => idles === 1, "one idle call");
    await Bun.sleep(150);
    expect(idles).toBe(1);
    expect(log.consumers().map((s) => s.name)).toContain("c8");
    await log.close();
    await c.closed;
    expect(c.status().state).toBe("stopped");
    expect(log.consumers().map((s) => s.name)).not.toContain("c8");
    log = await EventLog.open({ path, maxDelayMs: 1 });
  });

  it("never lets a periodic cursor store land after a commit of effects and move the cursor back", async () => {
    // slow batches: a commit waits ~100 ms for its transaction, and the periodic store (every 20 ms) of a
    // position moved by pages without effects would be queued behind it in the same transaction
    await log.close();
    log = await EventLog.open({ path, maxDelayMs: 30 });
    const regressions: number[] = [];
    let committedUpTo = 0;
    const c = consume(log, {
      name: "c9",
      retry: fast,
      pageSize: 1,
      commitEveryMs: 45,
      handler: async (page, ctx) => {
        const f = page[0]!;
        if (f.kind !== "data" || (f.value as number) % 3 !== 0) return; // most pages: no effects
        await ctx.commit([{ kind: "event", type: "effect", source: "c9", ts: f.ts }], f.offset);
        committedUpTo = f.offset;
        if (log.cursor("c9") < committedUpTo) regressions.push(log.cursor("c9"));
      },
    });
    for (let i = 1; i <= 120; i++) {
      await log.append([frame(i)]);
      await delay(3);
    }
    await waitFor(() => c.handledUpTo >= 120, "all handled", 20_000);
    await c.stop();
    expect(regressions).toEqual([]);
  }, 30_000);
});
