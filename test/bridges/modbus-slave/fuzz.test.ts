// Fuzzing the slave with random and malformed Modbus TCP frames on several connections while a
// well-behaved master polls. Seeded: set MODBUS_FUZZ_SEED to replay a failing run (the seed is printed).
import { afterAll, beforeAll, expect, it } from "bun:test";
import { Socket } from "node:net";
import { startSlave, type SlaveHarness } from "./harness.ts";

const FRAMES = 10_000;
const CONNECTIONS = 4;
const SEED = Number(process.env.MODBUS_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: small, fast, good enough to make failures reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POLLED = [11, -22, 333, -4444, 5555, 0, 7, -8, 99, 1000];
const TAGS = [
  ...POLLED.map((_, i) => ({ tag: `f/r${i}`, driver: "plc", type: "int16", access: "R" })),
  { tag: "f/w0", driver: "plc", type: "int16", access: "RW" },
  { tag: "f/w1", driver: "plc", type: "float32", access: "RW" },
  { tag: "f/c0", driver: "plc", type: "bool", access: "RW" },
  { tag: "f/d0", driver: "plc", type: "bool", access: "R" },
];
const MAP = [
  ...POLLED.map((_, i) => ({ tag: `f/r${i}`, area: "holding", address: i })),
  { tag: "f/w0", area: "holding", address: 10 },
  { tag: "f/w1", area: "holding", address: 11 },
  { tag: "f/c0", area: "coil", address: 0 },
  { tag: "f/d0", area: "discrete", address: 0 },
  { tag: "f/r0", area: "input", address: 0 },
];

type Expect = "answer" | "close" | "none";
interface Case {
  bytes: Uint8Array;
  expect: Expect;
  tid: number;
}

function mbap(tid: number, unit: number, pdu: Uint8Array, opts: { protocol?: number; length?: number } = {}): Uint8Array {
  const out = new Uint8Array(7 + pdu.length);
  const len = opts.length ?? pdu.length + 1;
  out.set([tid >> 8, tid & 0xff, (opts.protocol ?? 0) >> 8, (opts.protocol ?? 0) & 0xff, len >> 8, len & 0xff, unit]);
  out.set(pdu, 7);
  return out;
}

function makeCase(rnd: () => number, tid: number): Case {
  const int = (n: number) => Math.floor(rnd() * n);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const addr = () => (rnd() < 0.6 ? int(16) : int(65536));
  const u16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
  const unit = rnd() < 0.85 ? 1 : int(256);
  const kind = int(10);
  switch (kind) {
    case 0: // any function code, random PDU body
      return { bytes: mbap(tid, unit, Uint8Array.from([int(256), ...bytes(int(12))])), expect: "answer", tid };
    case 1: {
      // a read, quantity anywhere in 0..65535 (huge ones included)
      const fc = 1 + int(4);
      const q = rnd() < 0.5 ? int(65536) : int(130);
      return { bytes: mbap(tid, unit, Uint8Array.from([fc, ...u16(addr()), ...u16(q)])), expect: "answer", tid };
    }
    case 2: {
      // a write: single or multiple, byte count right or wrong
      const fc = [5, 6, 15, 16][int(4)]!;
      const q = 1 + int(4);
      const body =
        fc === 5 || fc === 6
          ? [...u16(addr()), ...(rnd() < 0.5 && fc === 5 ? [0xff, 0] : u16(int(65536)))]
          : [...u16(addr()), ...u16(rnd() < 0.1 ? int(65536) : q), fc === 15 ? Math.ceil(q / 8) + (rnd() < 0.2 ? 1 : 0) : q * 2, ...bytes(fc === 15 ? Math.ceil(q / 8) : q * 2)];
      return { bytes: mbap(tid, unit, Uint8Array.from([fc, ...body])), expect: "answer", tid };
    }
    case 3: {
      // truncated PDU with an MBAP length that matches it
      const fc = [1, 2, 3, 4, 5, 6, 15, 16, 23][int(9)]!;
      return { bytes: mbap(tid, unit, Uint8Array.from([fc, ...bytes(int(5))])), expect: "answer", tid };
    }
    case 4: // MBAP length outside 2..254
      return { bytes: mbap(tid, unit, Uint8Array.of(3, 0, 0, 0, 1), { length: [0, 1, 255, 256, 1000, 65535][int(6)]! }), expect: "close", tid };
    case 5: // protocol id not 0
      return { bytes: mbap(tid, unit, Uint8Array.of(3, 0, 0, 0, 1), { protocol: 1 + int(65535) }), expect: "close", tid };
    case 6: // MBAP length longer than what follows: the slave waits for the rest
      return { bytes: mbap(tid, unit, Uint8Array.of(3, 0, 0, 0, 1), { length: 7 + int(200) }), expect: "none", tid };
    case 7: // random bytes
      return { bytes: bytes(1 + int(300)), expect: "none", tid };
    default: {
      // a valid read of the polled registers: the answer must be exact
      return { bytes: mbap(tid, 1, Uint8Array.of(3, 0, 0, 0, 10)), expect: "answer", tid };
    }
  }
}

/** A raw connection that sends frames split across random TCP segments and collects answers in order. */
class FuzzConn {
  private readonly sock = new Socket();
  private buf = Buffer.alloc(0);
  private waiters: ((a: Buffer | "closed") => void)[] = [];
  private readonly inbox: Buffer[] = [];
  closed = false;
  error = "";

  constructor(port: number) {
    this.sock.setNoDelay(true);
    this.sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 7 && this.buf.length >= 6 + this.buf.readUInt16BE(4)) {
        const size = 6 + this.buf.readUInt16BE(4);
        const frame = this.buf.subarray(0, size);
        this.buf = this.buf.subarray(size);
        const w = this.waiters.shift();
        if (w) w(frame);
        else this.inbox.push(frame); // answered before the test asked for it
      }
    });
    const onClose = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w("closed");
    };
    this.sock.on("close", onClose);
    this.sock.on("error", (e) => {
      this.error = e.message;
      onClose();
    });
    this.sock.connect(port, "127.0.0.1");
  }

  ready(): Promise<void> {
    return new Promise((r) => (this.sock.readyState === "open" ? r() : this.sock.once("connect", () => r())));
  }

  /** Writes `bytes` in 1..4 pieces (each its own write, with a turn of the event loop between). */
  async send(bytes: Uint8Array, rnd: () => number): Promise<void> {
    const pieces = 1 + Math.floor(rnd() * 4);
    let at = 0;
    for (let i = 0; i < pieces && at < bytes.length && !this.closed; i++) {
      const end = i === pieces - 1 ? bytes.length : Math.min(bytes.length, at + 1 + Math.floor(rnd() * bytes.length));
      this.sock.write(bytes.subarray(at, end));
      at = end;
      if (at < bytes.length) await new Promise((r) => setImmediate(r));
    }
  }

  next(timeoutMs: number): Promise<Buffer | "closed" | "timeout"> {
    const early = this.inbox.shift();
    if (early) return Promise.resolve(early);
    if (this.closed) return Promise.resolve("closed");
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve("timeout");
      }, timeoutMs);
      const done = (a: Buffer | "closed") => {
        clearTimeout(t);
        resolve(a);
      };
      this.waiters.push(done);
    });
  }

  destroy(): void {
    this.closed = true;
    this.sock.destroy();
  }
}

let h: SlaveHarness;
beforeAll(async () => {
  console.log(`modbus slave fuzz seed: ${SEED} (MODBUS_FUZZ_SEED=${SEED} to replay)`);
  h = await startSlave({
    tags: TAGS,
    slave: { map: MAP, maxConnections: 64 },
    initial: Object.fromEntries(POLLED.map((v, i) => [`f/r${i}`, v])),
  });
});
afterAll(async () => {
  await h?.stop();
});

it(`survives ${FRAMES} random and malformed frames on ${CONNECTIONS} connections while a master keeps reading correct values`, async () => {
  const problems: string[] = [];
  let sent = 0;
  let answers = 0;
  let closes = 0;
  const fuzzing = { done: false };

  // the well-behaved master, polling throughout
  const master = await h.master({ timeoutMs: 10_000 });
  let polls = 0;
  const poller = (async () => {
    while (!fuzzing.done) {
      try {
        const { buffer } = await master.readHoldingRegisters(0, 10);
        const got = POLLED.map((_, i) => buffer.readInt16BE(2 * i));
        if (got.join() !== POLLED.join()) problems.push(`poller read ${got.join()}`);
        polls++;
      } catch (e) {
        problems.push(`poller failed: ${(e as Error).message}`);
        return;
      }
    }
  })();

  const worker = async (w: number) => {
    const rnd = prng(SEED + w * 7919);
    let conn = new FuzzConn(h.port);
    await conn.ready();
    let tid = 0;
    while (sent < FRAMES) {
      // a burst of 1..4 frames in one go (pipelining), then the answers
      const burst = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => makeCase(rnd, (tid = (tid + 1) & 0xffff)));
      const cut = burst.findIndex((c) => c.expect !== "answer");
      const cases = cut < 0 ? burst : burst.slice(0, cut + 1);
      await conn.send(Uint8Array.from(cases.flatMap((c) => [...c.bytes])), rnd);
      sent += cases.length;
      for (const c of cases) {
        if (c.expect === "none") break; // garbage or an unfinished frame: nothing to wait for
        const a = await conn.next(10_000);
        if (c.expect === "close") {
          if (a === "closed") closes++;
          else problems.push(`seed ${SEED}: expected a close after ${Buffer.from(c.bytes).toString("hex")}, got ${a === "timeout" ? "nothing" : a.toString("hex")}`);
          break;
        }
        if (a === "closed" || a === "timeout") {
          problems.push(`seed ${SEED}: no answer (${a}${conn.error ? `: ${conn.error}` : ""}) to ${Buffer.from(c.bytes).toString("hex")} (case ${cases.indexOf(c)} of ${cases.length})`);
          break;
        }
        answers++;
        checkAnswer(c, a, problems);
      }
      if (cases[cases.length - 1]!.expect !== "answer" || conn.closed) {
        conn.destroy();
        conn = new FuzzConn(h.port);
        await conn.ready();
      }
      if (problems.length > 20) break;
    }
    conn.destroy();
  };

  const started = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)));
  fuzzing.done = true;
  await poller;
  console.log(
    `fuzz: ${sent} frames, ${answers} answers, ${closes} closes, ${polls} good polls in ${Math.round(performance.now() - started)} ms; ` +
      `slave stats ${JSON.stringify(h.slave.stats)}`,
  );
  expect(problems).toEqual([]);
  expect(sent).toBeGreaterThanOrEqual(FRAMES);
  expect(polls).toBeGreaterThan(0);
  expect(closes).toBeGreaterThan(0);
  // still serving after the storm
  const { buffer } = await master.readHoldingRegisters(0, 10);
  expect(buffer.readInt16BE(6)).toBe(-4444);
}, 60_000);

/** The answer belongs to the request (same transaction id and unit, its function or its exception) and is well-formed. */
function checkAnswer(c: Case, a: Buffer, problems: string[]): void {
  const req = Buffer.from(c.bytes);
  const fc = req[7]!;
  const tag = `seed ${SEED}: request ${req.toString("hex")} answered ${a.toString("hex")}`;
  if (a.readUInt16BE(0) !== c.tid || a.readUInt16BE(2) !== 0 || a[6] !== req[6]) return void problems.push(`${tag}: header mismatch`);
  if (a[7] === (fc | 0x80)) {
    // 0B: a read touching f/w0 or f/w1 before a write gave them a value (never read: no value to serve)
    if (a.length !== 9 || ![1, 2, 3, 4, 0x0a, 0x0b].includes(a[8]!)) problems.push(`${tag}: bad exception`);
    return;
  }
  if (a[7] !== fc) return void problems.push(`${tag}: wrong function code`);
  if (fc === 3 && req.length === 12 && req.readUInt16BE(8) === 0 && req.readUInt16BE(10) === 10 && req[6] === 1) {
    const got = POLLED.map((_, i) => a.readInt16BE(9 + 2 * i));
    if (got.join() !== POLLED.join()) problems.push(`${tag}: wrong values`);
  }
}
