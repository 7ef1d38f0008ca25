// The Modbus slave against a real master (modbus-serial) over loopback: every mapped type and order,
// coils, discrete inputs, input registers, exceptions 01/02/03/04, writes as commands whose ack codes
// answer the master (04, 06, 0B ...), allowlist.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Socket } from "node:net";
import { waitFor } from "../../helpers/index.ts";
import type { AckCode } from "../../../schemas/index.ts";
import { exceptionOf, startSlave, type SlaveHarness } from "./harness.ts";

const tag = (name: string, type: string, extra: Record<string, unknown> = {}) => ({ tag: name, driver: "plc", type, access: "RW", ...extra });

const TAGS = [
  tag("t/i16", "int16"),
  tag("t/u16", "uint16"),
  tag("t/i32", "int32"),
  tag("t/u32", "uint32"),
  tag("t/f32", "float32"),
  tag("t/f64", "float64"),
  tag("t/i64", "int64"),
  tag("t/u64", "uint64"),
  tag("t/scaled", "float64", { min: 0, max: 100 }),
  tag("t/str", "string"),
  tag("t/ro", "float32", { access: "R" }),
  tag("t/sp", "float32", { min: -50, max: 500 }),
  tag("t/pump", "bool"),
  tag("t/valve", "bool", { access: "R" }),
  tag("t/alarm", "bool", { access: "R" }),
  tag("t/alarm2", "bool", { access: "R" }),
  tag("t/flow", "float32", { access: "R" }),
  tag("t/count", "uint32", { access: "R" }),
  tag("t/live", "int16", { access: "R" }),
];

const MAP = [
  { tag: "t/i16", area: "holding", address: 0 },
  { tag: "t/u16", area: "holding", address: 1 },
  { tag: "t/i32", area: "holding", address: 2 },
  { tag: "t/u32", area: "holding", address: 4, wordOrder: "LE" },
  { tag: "t/f32", area: "holding", address: 6, byteOrder: "LE", wordOrder: "LE" },
  { tag: "t/f64", area: "holding", address: 8 },
  { tag: "t/i64", area: "holding", address: 12 },
  { tag: "t/u64", area: "holding", address: 16, wordOrder: "LE" },
  { tag: "t/scaled", area: "holding", address: 20, type: "int16", scale: 0.1 },
  { tag: "t/str", area: "holding", address: 21, length: 3 },
  { tag: "t/live", area: "holding", address: 24 },
  { tag: "t/ro", area: "holding", address: 30 },
  { tag: "t/sp", area: "holding", address: 40 },
  { tag: "t/pump", area: "coil", address: 0 },
  { tag: "t/valve", area: "coil", address: 1 },
  { tag: "t/alarm", area: "discrete", address: 0 },
  { tag: "t/alarm2", area: "discrete", address: 1 },
  { tag: "t/flow", area: "input", address: 0 },
  { tag: "t/count", area: "input", address: 2 },
  { tag: "t/i16", unitId: 2, area: "input", address: 100 },
];

const INITIAL = {
  "t/i16": -1234,
  "t/u16": 60000,
  "t/i32": -100000,
  "t/u32": 4000000000,
  "t/f32": 3.5,
  "t/f64": -2.25e10,
  "t/i64": -9007199254740993n,
  "t/u64": 18446744073709551615n,
  "t/scaled": 23.4,
  "t/str": "ABCDE",
  "t/ro": 1.25,
  "t/sp": 10,
  "t/pump": true,
  "t/valve": false,
  "t/alarm": true,
  "t/alarm2": false,
  "t/flow": 12.5,
  "t/count": 123456,
};

/** 32-bit big-endian bytes with the two words swapped (word order CDAB). */
const swapWords = (b: Buffer) => Buffer.concat(Array.from({ length: b.length / 2 }, (_, i) => b.subarray(b.length - 2 * (i + 1), b.length - 2 * i)));

let h: SlaveHarness;
beforeAll(async () => {
  h = await startSlave({ tags: TAGS, slave: { map: MAP }, initial: INITIAL });
});
afterAll(async () => {
  await h?.stop();
});

describe("reads", () => {
  it("serves every mapped register type with its byte and word order from the latest values in the log", async () => {
    const m = await h.master();
    const { buffer } = await m.readHoldingRegisters(0, 24);
    expect(buffer.readInt16BE(0)).toBe(-1234);
    expect(buffer.readUInt16BE(2)).toBe(60000);
    expect(buffer.readInt32BE(4)).toBe(-100000);
    const u32 = Buffer.alloc(4);
    u32.writeUInt32BE(4000000000);
    expect(buffer.subarray(8, 12)).toEqual(swapWords(u32)); // CDAB
    expect(buffer.readFloatLE(12)).toBe(3.5); // byte LE + word LE = fully reversed
    expect(buffer.readDoubleBE(16)).toBe(-2.25e10);
    expect(buffer.readBigInt64BE(24)).toBe(-9007199254740993n); // exact beyond 2^53
    const u64 = Buffer.alloc(8);
    u64.writeBigUInt64BE(18446744073709551615n);
    expect(buffer.subarray(32, 40)).toEqual(swapWords(u64));
    expect(buffer.readInt16BE(40)).toBe(234); // 23.4 / 0.1
    expect(buffer.subarray(42, 48).toString("latin1")).toBe("ABCDE\0");
  });

  it("serves coils, discrete inputs and input registers", async () => {
    const m = await h.master();
    expect((await m.readCoils(0, 2)).data.slice(0, 2)).toEqual([true, false]);
    expect((await m.readDiscreteInputs(0, 2)).data.slice(0, 2)).toEqual([true, false]);
    const { buffer } = await m.readInputRegisters(0, 4);
    expect(buffer.readFloatBE(0)).toBe(12.5);
    expect(buffer.readUInt32BE(4)).toBe(123456);
  });

  it("serves a tag mapped on a second unit id", async () => {
    const m = await h.master({ unit: 2 });
    expect((await m.readInputRegisters(100, 1)).buffer.readInt16BE(0)).toBe(-1234);
  });

  it("follows the live tail: a value appended after start is served", async () => {
    const m = await h.master();
    await h.publish({ "t/live": 4321 });
    await waitFor(async () => (await m.readHoldingRegisters(24, 1)).data[0] === 4321, "live value served", 10_000);
    await h.publish({ "t/live": -7 });
    await waitFor(async () => (await m.readHoldingRegisters(24, 1)).buffer.readInt16BE(0) === -7, "second live value served", 10_000);
  });

  it("reads unmapped addresses between mapped ones as zero", async () => {
    const m = await h.master();
    const { data } = await m.readHoldingRegisters(25, 6); // 25..29 unmapped, 30 is t/ro
    expect(data.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
  });
});

describe("exceptions", () => {
  it("answers exception 01 to an unsupported function code", async () => {
    const m = await h.master();
    // FC 22 (mask write register) is not served
    const code = await exceptionOf(new Promise((resolve, reject) => m.writeFC22(1, 0, 0xff, 0, (err, v) => (err ? reject(err) : resolve(v)))));
    expect(code).toBe(1);
  });

  it("answers exception 02 to a read of unmapped registers and to one past address 65535", async () => {
    const m = await h.master();
    expect(await exceptionOf(m.readHoldingRegisters(1000, 10))).toBe(2);
    expect(await exceptionOf(m.readCoils(500, 1))).toBe(2);
    expect(await exceptionOf(m.readInputRegisters(65530, 10))).toBe(2);
  });

  it("answers exception 03 to a quantity above 125 registers or 2000 coils", async () => {
    const m = await h.master();
    expect(await exceptionOf(m.readHoldingRegisters(0, 126))).toBe(3);
    expect(await exceptionOf(m.readCoils(0, 2001))).toBe(3);
  });

  it("answers exception 03 to a write-single-coil value other than 0xFF00/0x0000", async () => {
    const answer = await rawRequest(h.port, Uint8Array.of(0, 9, 0, 0, 0, 6, 1, 5, 0, 0, 0x12, 0x34));
    expect([...answer]).toEqual([0, 9, 0, 0, 0, 3, 1, 0x85, 3]);
  });

  it("reports requests and exception responses by code in its status (the readiness document, the console's Bridges page)", async () => {
    const m = await h.master();
    const before = h.slave.status();
    expect(await exceptionOf(m.readHoldingRegisters(1000, 10))).toBe(2);
    await m.readHoldingRegisters(0, 1);
    const after = h.slave.status();
    expect(after.requests - before.requests).toBe(2);
    expect((after.exceptions[2] ?? 0) - (before.exceptions[2] ?? 0)).toBe(1);
  });

  it("answers exception 0A to a unit id that has no map", async () => {
    const m = await h.master({ unit: 9 });
    expect(await exceptionOf(m.readHoldingRegisters(0, 1))).toBe(0x0a);
  });
});

describe("writes", () => {
  it("turns a holding register write into a CmdFrame with origin modbus and answers after the ack", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    h.answer = async () => {
      await gate; // the PLC is slow: the Modbus answer must wait for the ack
      return { ok: true };
    };
    const m = await h.master();
    const v = Buffer.alloc(4);
    v.writeFloatBE(123.5);
    let answered = false;
    const write = m.writeRegisters(40, [v.readUInt16BE(0), v.readUInt16BE(2)]).then((r) => {
      answered = true;
      return r;
    });
    const cmd = await waitFor(() => h.commands.find((c) => c.tag === "t/sp" && c.value === 123.5), "command in the log", 10_000);
    expect(cmd.origin).toBe("modbus");
    expect(cmd.actor).toBe("modbus:127.0.0.1");
    expect(cmd.tenant).toBe("default");
    await Bun.sleep(100); // a short look for a premature answer; the ack is still held back
    expect(answered).toBe(false);
    release();
    expect(await write).toEqual({ address: 40, length: 2 });
    h.answer = () => ({ ok: true });
  });

  it("scales a written raw register into engineering units", async () => {
    const m = await h.master();
    await m.writeRegister(20, 555);
    const cmd = await waitFor(() => h.commands.find((c) => c.tag === "t/scaled" && c.origin === "modbus"), "scaled command", 10_000);
    expect(cmd.value).toBeCloseTo(55.5, 9);
  });

  it("turns coil writes (single and multiple) into commands with boolean values", async () => {
    const m = await h.master();
    const before = h.commands.length;
    await m.writeCoil(0, false);
    await m.writeCoils(0, [true]);
    const cmds = h.commands.slice(before).filter((c) => c.tag === "t/pump");
    expect(cmds.map((c) => c.value)).toEqual([false, true]);
  });

  it("answers exception 0B (outcome unknown) when no ack comes within the write timeout", async () => {
    const h2 = await startSlave({ tags: TAGS, slave: { map: MAP, writeTimeoutMs: 300 }, initial: INITIAL });
    try {
      h2.answer = () => "silent";
      const m = await h2.master();
      expect(await exceptionOf(m.writeRegister(0, 5))).toBe(0x0b);
      expect(h2.slave.stats.exceptions[0x0b]).toBe(1);
    } finally {
      await h2.stop();
    }
  });

  it("refuses a write to a read-only tag with exception 02 and appends no command", async () => {
    const m = await h.master();
    const head = h.log.head;
    expect(await exceptionOf(m.writeRegisters(30, [0x3f80, 0]))).toBe(2);
    expect(await exceptionOf(m.writeCoil(1, true))).toBe(2);
    // a command would have been committed before any answer: the log after `head` holds none
    const cmds = [];
    for await (const f of h.log.read({ from: head + 1, kinds: ["cmd"] })) cmds.push(f);
    expect(cmds).toEqual([]);
  });

  it("refuses a write covering only half of a 32-bit value and a write to unmapped registers with exception 02", async () => {
    const m = await h.master();
    expect(await exceptionOf(m.writeRegister(41, 0))).toBe(2);
    expect(await exceptionOf(m.writeRegister(1000, 0))).toBe(2);
  });

  it("refuses a value outside the tag's min/max with exception 03", async () => {
    const m = await h.master();
    const v = Buffer.alloc(4);
    v.writeFloatBE(1000); // t/sp max is 500
    expect(await exceptionOf(m.writeRegisters(40, [v.readUInt16BE(0), v.readUInt16BE(2)]))).toBe(3);
  });

  it("reads back through function 23 after its write was acked", async () => {
    const m = await h.master();
    const r = await new Promise<{ data: number[] }>((resolve, reject) =>
      m.writeFC23(1, 0, 2, 1, 1, [50000], (err, v) => (err ? reject(err) : resolve(v as { data: number[] }))),
    );
    expect(h.commands.some((c) => c.tag === "t/u16" && c.value === 50000)).toBe(true);
    expect(r.data[0]).toBe(0xfb2e); // t/i16 -1234 as uint16
  });
});

describe("write acks", () => {
  // the ack's code, mapped through ACK_CODE_INFO: the master learns what happened, not a text
  const cases: [AckCode, number, string][] = [
    ["device_error", 0x04, "the device refused the write"],
    ["device_address_error", 0x04, "the device lacks the address"],
    ["expired", 0x04, "the command expired before execution"],
    ["driver_not_running", 0x04, "the tag's driver is not running"],
    ["device_busy", 0x06, "the link to the device is being re-established (retry later)"],
    ["not_supported", 0x01, "the driver cannot write"],
    ["timeout_outcome_unknown", 0x0b, "the device did not answer in time (outcome unknown)"],
    ["outcome_unknown_restart", 0x0b, "the gateway restarted during the write (outcome unknown)"],
  ];
  for (const [code, exception, what] of cases) {
    it(`answers exception ${exception.toString(16).padStart(2, "0").toUpperCase()} when ${what} (ack ${code})`, async () => {
      h.answer = () => ({ ok: false, code, error: "text that must not matter" });
      try {
        const m = await h.master();
        expect(await exceptionOf(m.writeRegisters(40, [0x4120, 0]))).toBe(exception);
      } finally {
        h.answer = () => ({ ok: true });
      }
    });
  }

  it("answers a write acked ok with the echo of the request", async () => {
    const m = await h.master();
    expect(await m.writeRegisters(40, [0x4120, 0])).toEqual({ address: 40, length: 2 });
    expect(h.commands.at(-1)).toMatchObject({ tag: "t/sp", value: 10 });
  });

  it("answers 0B for a write over two tags when one is refused and the other's outcome is unknown", async () => {
    // t/i16 at 0 and t/u16 at 1: one request, two commands
    h.answer = (cmd) => (cmd.tag === "t/i16" ? { ok: false, code: "device_error" } : { ok: false, code: "timeout_outcome_unknown" });
    try {
      const m = await h.master();
      expect(await exceptionOf(m.writeRegisters(0, [1, 2]))).toBe(0x0b);
    } finally {
      h.answer = () => ({ ok: true });
    }
  });
});

describe("allowlist", () => {
  it("closes connections from addresses outside the allowlist and serves those inside", async () => {
    const denied = await startSlave({ tags: TAGS, slave: { map: MAP, allowlist: ["10.0.0.0/8"] }, initial: INITIAL });
    const allowed = await startSlave({ tags: TAGS, slave: { map: MAP, allowlist: ["127.0.0.0/8"] }, initial: INITIAL });
    try {
      const closed = await new Promise<boolean>((resolve) => {
        const s = new Socket();
        s.on("error", () => resolve(true));
        s.on("close", () => resolve(true));
        s.on("data", () => resolve(false));
        s.connect(denied.port, "127.0.0.1", () => s.write(Uint8Array.of(0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1)));
      });
      expect(closed).toBe(true);
      expect(denied.slave.stats.refused).toBeGreaterThanOrEqual(1);
      const m = await allowed.master();
      expect((await m.readHoldingRegisters(0, 1)).buffer.readInt16BE(0)).toBe(-1234);
    } finally {
      await denied.stop();
      await allowed.stop();
    }
  });
});

/** Sends raw bytes and resolves with the first answer's bytes. */
function rawRequest(port: number, bytes: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    s.on("error", reject);
    s.on("data", (d: Buffer) => {
      resolve(d);
      s.destroy();
    });
    s.connect(port, "127.0.0.1", () => s.write(bytes));
  });
}
