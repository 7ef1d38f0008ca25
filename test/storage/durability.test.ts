// Durability: a child ingests at full speed and is killed with SIGKILL at random moments. After every
// kill the log must open cleanly, hold every frame the child saw committed (same offset, same content),
// and have offsets 1..head without gap or duplicate; the next child continues from head + 1.
import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { EventLog } from "../../storage/index.ts";
import { tempDir } from "../helpers/index.ts";

const ROUNDS = 24;
const dir = tempDir("edge-durability-");
const path = join(dir.path, "log.duckdb");
afterAll(() => dir.cleanup());

interface Round {
  readyHead: number | null;
  ranges: [number, number][];
  errors: string[];
}

/** Runs one child, kills it with SIGKILL after `killAfterMs`: counted from its first commit (so the kill
 *  lands mid-ingest however slow the machine is), or from the spawn when `early`. */
async function runChild(killAfterMs: number, early: boolean): Promise<Round> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "ingest-child.ts"), path], { stdout: "pipe", stderr: "pipe" });
  const round: Round = { readyHead: null, ranges: [], errors: [] };
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const kill = () => child.kill("SIGKILL");
  if (early) killTimer = setTimeout(kill, killAfterMs);
  const decoder = new TextDecoder();
  let buf = "";
  // Bun's ReadableStream is async-iterable; the DOM lib types do not say so
  for await (const chunk of child.stdout as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    const lines = buf.split("\n");
    buf = lines.pop()!; // a line cut by the kill is not counted
    for (const line of lines) {
      const [a, b] = line.split(" ");
      if (a === "ready") round.readyHead = Number(b);
      else if (a === "error") round.errors.push(line);
      else {
        if (!early && round.ranges.length === 0) killTimer = setTimeout(kill, killAfterMs);
        round.ranges.push([Number(a), Number(b)]);
      }
    }
  }
  const code = await child.exited;
  clearTimeout(killTimer);
  if (child.signalCode !== "SIGKILL") throw new Error(`child ended by itself (${code}): ${await new Response(child.stderr).text()}`);
  return round;
}

/** Opens the log as the gateway would, checks it, and returns its head. */
async function check(reported: [number, number][]): Promise<number> {
  const log = await EventLog.open({ path, tailFrames: 0 });
  try {
    const conn = await log.connect();
    try {
      const [count, distinct, min, max, badContent] = (
        await conn.runAndReadAll(
          `SELECT count(*), count(DISTINCT "offset"), coalesce(min("offset"), 0), coalesce(max("offset"), 0),
                  count(*) FILTER (WHERE kind <> 1 OR num <> "offset" * 2 OR ts <> "offset" OR tag <> 't' || ("offset" % 100)::VARCHAR)
           FROM log`,
        )
      ).getRows()[0]!.map(Number);
      const head = log.head;
      expect({ count, distinct, min: count ? min : 1, max }).toEqual({ count: head, distinct: head, min: 1, max: head });
      expect(badContent).toBe(0);
      // every range the child saw committed is in 1..head, hence present with its content checked above
      for (const [first, last] of reported) {
        expect(first).toBeGreaterThanOrEqual(1);
        expect(last).toBeLessThanOrEqual(head);
      }
      return head;
    } finally {
      conn.closeSync();
    }
  } finally {
    await log.close();
  }
}

describe("durability", () => {
  it(`keeps every committed frame, gapless, across ${ROUNDS} SIGKILLs at random moments`, async () => {
    let head = 0;
    let committedRounds = 0;
    for (let i = 0; i < ROUNDS; i++) {
      // most kills land mid-ingest; every fourth one at any moment after spawn (even while opening)
      const early = i % 4 === 3;
      const round = await runChild(early ? Math.random() * 600 : Math.random() * 400, early);
      expect(round.errors).toEqual([]);
      if (round.readyHead !== null) expect(round.readyHead).toBe(head); // the child continued from the last head
      if (round.ranges.length) {
        committedRounds++;
        expect(round.ranges[0]![0]).toBe(head + 1);
      }
      const before = head;
      head = await check(round.ranges);
      expect(head).toBeGreaterThanOrEqual(Math.max(before, ...round.ranges.map((r) => r[1])));
    }
    expect(committedRounds).toBeGreaterThanOrEqual(ROUNDS - ROUNDS / 4);
    expect(head).toBeGreaterThan(0);
  }, 150_000);
});
