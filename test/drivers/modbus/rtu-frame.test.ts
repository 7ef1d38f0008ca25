// Modbus RTU framing without I/O: CRC, request bytes, answer lengths, answer checks, line silence.
import { describe, expect, it } from "bun:test";
import { crc16, decodeAnswer, encodeRequest, expectedLength, RtuCrcError, RtuFrameError, silenceMs } from "../../../drivers/modbus/rtu-frame.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("RTU framing", () => {
  it("encodes a read of 10 holding registers as the spec's example bytes, CRC low byte first", () => {
    expect(hex(encodeRequest(1, { fc: 3, address: 0, count: 10 }))).toBe("01030000000ac5cd");
    expect(crc16(Buffer.from("01030000000a", "hex"))).toBe(0xcdc5);
  });

  it("encodes writes of one and several registers and coils", () => {
    expect(hex(encodeRequest(17, { fc: 6, address: 1, value: 3 })).slice(0, 12)).toBe("110600010003");
    expect(hex(encodeRequest(17, { fc: 16, address: 1, values: [10, 258] })).slice(0, 22)).toBe("11100001000204000a0102");
    expect(hex(encodeRequest(17, { fc: 5, address: 172, value: true })).slice(0, 12)).toBe("110500acff00");
    expect(hex(encodeRequest(17, { fc: 15, address: 19, values: [true, false, true, true, false, false, true, true, true, false] })).slice(0, 18)).toBe("110f0013000a02cd01");
  });

  it("knows an answer's length from its first bytes: exception 5, read 5 + byte count, write echo 8", () => {
    const read = { fc: 3, address: 0, count: 2 } as const;
    expect(expectedLength(read, Buffer.from([1]), 1)).toBeUndefined();
    expect(expectedLength(read, Buffer.from([1, 3]), 2)).toBeUndefined();
    expect(expectedLength(read, Buffer.from([1, 3, 4]), 3)).toBe(9);
    expect(expectedLength(read, Buffer.from([1, 0x83]), 2)).toBe(5);
    expect(expectedLength({ fc: 6, address: 0, value: 1 }, Buffer.from([1, 6]), 2)).toBe(8);
  });

  it("decodes registers, bits and exceptions, and refuses a bad CRC, another unit or a short count", () => {
    const frame = (body: number[]) => {
      const b = Buffer.alloc(body.length + 2);
      b.set(body);
      b.writeUInt16LE(crc16(b, body.length), body.length);
      return b;
    };
    const read = { fc: 3, address: 0, count: 2 } as const;
    expect(decodeAnswer(1, read, frame([1, 3, 4, 0, 7, 1, 2]))).toEqual({ ok: true, data: [7, 258] });
    expect(decodeAnswer(1, { fc: 1, address: 0, count: 3 }, frame([1, 1, 1, 0b101]))).toEqual({ ok: true, data: [true, false, true] });
    expect(decodeAnswer(1, read, frame([1, 0x83, 2]))).toEqual({ ok: false, exception: 2 });
    const corrupt = frame([1, 3, 4, 0, 7, 1, 2]);
    corrupt[4] = corrupt[4]! ^ 1;
    expect(() => decodeAnswer(1, read, corrupt)).toThrow(RtuCrcError);
    expect(() => decodeAnswer(1, read, frame([2, 3, 4, 0, 7, 1, 2]))).toThrow("answer from unit 2, expected 1");
    expect(() => decodeAnswer(1, read, frame([1, 3, 2, 0, 7]))).toThrow(RtuFrameError);
  });

  it("keeps 3.5 characters of silence: 2.0 ms at 19200 8E1, 3.6 ms at 9600 8N1 with one stop bit, 1.75 ms above 19200", () => {
    expect(silenceMs({ baud: 19200, parity: "even", dataBits: 8, stopBits: 1 })).toBeCloseTo(2.005, 2);
    expect(silenceMs({ baud: 9600, parity: "none", dataBits: 8, stopBits: 1 })).toBeCloseTo(3.646, 2);
    expect(silenceMs({ baud: 115200, parity: "even", dataBits: 8, stopBits: 1 })).toBe(1.75);
  });
});
