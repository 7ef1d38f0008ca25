// The RTU line's scheduling on a real pty pair: one request at a time, round robin between units.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { closeSync, openSync, writeSync } from "node:fs";
import { ModbusTimeoutError } from "../../../drivers/modbus/client.ts";
import { RtuLine } from "../../../drivers/modbus/rtu.ts";
import { openSerialLink, type ByteLink } from "../../../drivers/modbus/serial-port.ts";
import { tempDir } from "../../helpers/index.ts";
import { ptyPair, RtuTestSlave, type PtyPair } from "../../helpers/serial.ts";

let dir: ReturnType<typeof tempDir>;
let pair: PtyPair;
let slave: RtuTestSlave;
let line: RtuLine;

beforeEach(async () => {
  dir = tempDir();
  pair = await ptyPair(dir.path);
  slave = await RtuTestSlave.open(pair.b, [1, 2]);
  line = new RtuLine({ name: pair.a, timeoutMs: 150, silenceMs: 2, open: () => openSerialLink(pair.a, { baud: 19200, parity: "even", dataBits: 8, stopBits: 1 }) });
});

afterEach(async () => {
  line.close();
  slave.close();
  await pair.stop();
  dir.cleanup();
});

describe("RTU line", () => {
  it("serves queued requests round robin between units, whatever order they were queued in", async () => {
    const reads = [...Array.from({ length: 6 }, () => line.readRegisters(1, "holding", 0, 1)), ...Array.from({ length: 3 }, () => line.readRegisters(2, "holding", 0, 1))];
    expect(await Promise.all(reads)).toEqual([...Array(6).fill([100]), ...Array(3).fill([200])]);
    expect(slave.requests.map((r) => r.unit)).toEqual([1, 2, 1, 2, 1, 2, 1, 1, 1]);
  });

  it("never has two requests on the line: each is sent after the previous one's answer and the silence", async () => {
    await Promise.all([1, 2, 1, 2].map((u) => line.readRegisters(u, "holding", 0, 1)));
    const gaps = slave.requests.slice(1).map((r, i) => r.at - slave.requests[i]!.at);
    // arrival times at the slave: a pty under load may deliver one request late, which shortens the
    // next gap as seen there; the line never sends two without an answer and some silence between
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(1);
  });

  it("keeps the whole silence of a fractional length (1.75 ms) between an answer's last byte and the next request, measured at the link", async () => {
    // Bun's timers run on whole milliseconds: setTimeout(1.75) fired after ~1.1 ms, cutting the silence short
    const events: { at: number; what: "data" | "write" }[] = [];
    const open = async (): Promise<ByteLink> => {
      const link = await openSerialLink(pair.a, { baud: 115200, parity: "even", dataBits: 8, stopBits: 1 });
      const spy: ByteLink = {
        name: link.name,
        write: (b) => (events.push({ at: performance.now(), what: "write" }), link.write(b)),
        close: () => link.close(),
        onData: () => undefined,
        onClose: () => undefined,
      };
      link.onData = (b) => (events.push({ at: performance.now(), what: "data" }), spy.onData(b));
      link.onClose = (e) => spy.onClose(e);
      return spy;
    };
    const fast = new RtuLine({ name: pair.a, timeoutMs: 5_000, silenceMs: 1.75, open }); // a loaded machine answers late: this test measures silence, not timeouts
    try {
      await Promise.all(Array.from({ length: 30 }, (_, i) => fast.readRegisters(1 + (i % 2), "holding", 0, 1)));
    } finally {
      fast.close();
    }
    const gaps: number[] = [];
    let lastData = -1;
    for (const e of events) {
      if (e.what === "data") lastData = e.at;
      else if (lastData >= 0) gaps.push(e.at - lastData);
    }
    expect(gaps).toHaveLength(29);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(1.75);
  });

  it("takes an answer followed by a stray byte in the same read (a transceiver's turn-around glitch) and drops the byte", async () => {
    // the end of an answer is its length: a byte after a whole frame whose CRC checks is not part of it,
    // whether it arrives with the frame or after it
    slave.behaviour.set(1, "trailing-byte");
    expect(await line.readRegisters(1, "holding", 0, 3)).toEqual([100, 101, 102]);
    expect(await line.readRegisters(2, "holding", 1, 1)).toEqual([201]);
    expect(await line.readRegisters(1, "holding", 5, 1)).toEqual([105]);
  });

  it("fails a read whose answer announces a wrong byte count at once, as garbled (not after the timeout, nor as a silent unit)", async () => {
    slave.behaviour.set(2, "wrong-count");
    const started = performance.now();
    await expect(line.readRegisters(2, "holding", 0, 1)).rejects.toThrow("answer announces 250 bytes, expected 2");
    expect(performance.now() - started).toBeLessThan(150); // the timeout
    slave.behaviour.set(2, "ok");
    expect(await line.readRegisters(2, "holding", 0, 1)).toEqual([200]); // not held back as silent
  });

  it("times out a silent unit's request alone, then serves the next unit's request", async () => {
    slave.behaviour.set(2, "silent");
    const [dead, alive] = await Promise.allSettled([line.readRegisters(2, "holding", 0, 1), line.readRegisters(1, "holding", 0, 1)]);
    expect(dead.status === "rejected" && dead.reason).toBeInstanceOf(ModbusTimeoutError);
    expect(alive).toEqual({ status: "fulfilled", value: [100] });
  });

  it("fails a silent unit's further reads unsent until its next try, so that the other unit keeps its pace on the line", async () => {
    // before: every read of a dead unit cost the line a timeout; with 5 reads per cycle of a dead unit a live
    // unit polled every 100 ms got 3.2 reads/s instead of 10 (measured through the gateway on a pty)
    slave.behaviour.set(2, "silent");
    const started = performance.now();
    const dead = Array.from({ length: 5 }, (_, i) => line.readRegisters(2, "holding", i, 1));
    const alive = Array.from({ length: 5 }, (_, i) => line.readRegisters(1, "holding", i, 1));
    const results = await Promise.allSettled([...dead, ...alive]);
    for (const r of results.slice(0, 5)) expect(r.status === "rejected" && r.reason).toBeInstanceOf(ModbusTimeoutError);
    expect(results.slice(5).map((r) => r.status === "fulfilled" && r.value)).toEqual([[100], [101], [102], [103], [104]]);
    expect(slave.seen.get(2)).toBe(1); // one timeout (150 ms), not five
    expect(performance.now() - started).toBeLessThan(5 * 150);
  });

  it("tries a silent unit again after its hold (500 ms, doubling per timeout) and serves it once it answers; writes to it are always sent", async () => {
    slave.behaviour.set(2, "silent");
    await expect(line.readRegisters(2, "holding", 0, 1)).rejects.toThrow("no answer within 150 ms");
    await expect(line.readRegisters(2, "holding", 0, 1)).rejects.toThrow(/unit 2: not answering .* tried again in \d+ ms/);
    expect(slave.seen.get(2)).toBe(1);
    await expect(line.writeRegisters(2, 5, [7])).rejects.toThrow("no answer within 150 ms"); // sent: the slave saw it
    expect(slave.seen.get(2)).toBe(2);
    slave.behaviour.set(2, "ok");
    await Bun.sleep(1100); // the hold doubled after the second timeout: 1 s
    expect(await line.readRegisters(2, "holding", 0, 1)).toEqual([200]);
    expect(await line.readRegisters(2, "holding", 1, 1)).toEqual([201]); // answered: no longer held
  });

  it("fails the link instead of blocking the process when the device end takes no more bytes (socat stopped: the tty's buffer fills)", async () => {
    // before: the blocking write froze the whole process once ~16-24 KB were queued (a gateway polling a hung
    // line froze after minutes: HTTP, every driver); now the write fails, the link ends, the line reopens later
    const link = await openSerialLink(pair.a, { baud: 19200, parity: "even", dataBits: 8, stopBits: 1 });
    let ended = null as Error | null; // set by the callback: not narrowed to null
    link.onClose = (why) => (ended = why);
    pair.pause();
    let failed: Error | null = null;
    try {
      for (let i = 0; i < 100_000 && !failed; i++) link.write(Buffer.alloc(8));
    } catch (e) {
      failed = e as Error;
    } finally {
      pair.resume();
      link.close();
    }
    expect(failed?.message).toContain("the device takes no more bytes (output buffer full");
    expect(ended).toBe(failed);
  });

  it("drops bytes that arrive while no request waits (stale bytes in the device from an earlier session)", async () => {
    await line.readRegisters(1, "holding", 0, 1);
    const fd = openSync(pair.b, "r+");
    writeSync(fd, Buffer.from([1, 3, 2, 0xde, 0xad])); // a late, partial answer nobody asked for
    closeSync(fd);
    await Bun.sleep(20);
    expect(await line.readRegisters(1, "holding", 1, 1)).toEqual([101]);
  });
});
