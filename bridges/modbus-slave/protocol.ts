// Modbus TCP framing and PDU parsing, pure (no I/O): MBAP header split from a byte stream, request
// PDUs parsed into typed requests with the checks of the spec in its order (function 01, then
// quantity/value 03, then address 02), responses and exception responses built. Kept dependency-free
// so that it is fully ours to fuzz.

/** MBAP header: transaction id (2), protocol id (2, always 0), length (2: unit id + PDU), unit id (1). */
export const MBAP_SIZE = 7;
/** Largest PDU of the spec (function code + 252 bytes), so the MBAP length is at most 254. */
export const MAX_PDU = 253;

export const ExceptionCode = {
  IllegalFunction: 0x01,
  IllegalDataAddress: 0x02,
  IllegalDataValue: 0x03,
  DeviceFailure: 0x04,
  /** the unit id names no device behind this gateway */
  GatewayPathUnavailable: 0x0a,
  /** the device behind the gateway did not answer: a Bad value, or a write whose outcome is unknown */
  GatewayTargetFailed: 0x0b,
} as const;

/** A request that must be answered with a Modbus exception response. */
export class ModbusException extends Error {
  override name = "ModbusException";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export type ReadRequest = { fc: 1 | 2 | 3 | 4; address: number; quantity: number };
export type WriteBitsRequest = { fc: 5 | 15; address: number; bits: boolean[] };
export type WriteWordsRequest = { fc: 6 | 16; address: number; words: Uint16Array };
export type ReadWriteRequest = { fc: 23; read: { address: number; quantity: number }; write: { address: number; words: Uint16Array } };
export type Request = ReadRequest | WriteBitsRequest | WriteWordsRequest | ReadWriteRequest;

export type Framed =
  | { kind: "frame"; tid: number; unit: number; pdu: Uint8Array; size: number }
  | { kind: "incomplete" }
  | { kind: "bad"; reason: string };

/**
 * The next frame at the start of `buf`. "bad" when the header cannot be trusted (protocol id not 0,
 * length outside 2..254): the stream has lost its framing and the connection must be closed.
 */
export function nextFrame(buf: Uint8Array): Framed {
  if (buf.length < MBAP_SIZE) return { kind: "incomplete" };
  const protocol = (buf[2]! << 8) | buf[3]!;
  const length = (buf[4]! << 8) | buf[5]!;
  if (protocol !== 0) return { kind: "bad", reason: `protocol id ${protocol}, expected 0` };
  if (length < 2 || length > MAX_PDU + 1) return { kind: "bad", reason: `MBAP length ${length} outside 2..${MAX_PDU + 1}` };
  const size = 6 + length;
  if (buf.length < size) return { kind: "incomplete" };
  return { kind: "frame", tid: (buf[0]! << 8) | buf[1]!, unit: buf[6]!, pdu: buf.subarray(MBAP_SIZE, size), size };
}

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;

/** Fixed-size PDUs must have exactly their size; variable ones (`atLeast`) at least their header. */
function need(pdu: Uint8Array, bytes: number, what: string, atLeast = false): void {
  if (atLeast ? pdu.length < bytes : pdu.length !== bytes) throw new ModbusException(ExceptionCode.IllegalDataValue, `${what}: PDU of ${pdu.length} bytes, expected ${bytes}`);
}

function checkRange(address: number, quantity: number): void {
  if (address + quantity > 65536) throw new ModbusException(ExceptionCode.IllegalDataAddress, `addresses ${address}..${address + quantity - 1} run past 65535`);
}

function quantityIn(q: number, max: number, what: string): void {
  if (q < 1 || q > max) throw new ModbusException(ExceptionCode.IllegalDataValue, `${what}: quantity ${q} outside 1..${max}`);
}

/** Parses a request PDU (function code first); throws ModbusException with the code to answer. */
export function parseRequest(pdu: Uint8Array): Request {
  const fc = pdu[0]!;
  switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4: {
      need(pdu, 5, `function ${fc}`);
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      quantityIn(quantity, fc <= 2 ? 2000 : 125, `function ${fc}`);
      checkRange(address, quantity);
      return { fc, address, quantity };
    }
    case 5: {
      need(pdu, 5, "function 5");
      const v = u16(pdu, 3);
      if (v !== 0xff00 && v !== 0x0000) throw new ModbusException(ExceptionCode.IllegalDataValue, `function 5: coil value 0x${v.toString(16)}, expected 0xFF00 or 0x0000`);
      return { fc, address: u16(pdu, 1), bits: [v === 0xff00] };
    }
    case 6:
      need(pdu, 5, "function 6");
      return { fc, address: u16(pdu, 1), words: Uint16Array.of(u16(pdu, 3)) };
    case 15: {
      need(pdu, 6, "function 15", true);
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      quantityIn(quantity, 1968, "function 15");
      const count = pdu[5]!;
      if (count !== Math.ceil(quantity / 8) || pdu.length !== 6 + count) {
        throw new ModbusException(ExceptionCode.IllegalDataValue, `function 15: byte count ${count} and PDU of ${pdu.length} bytes do not fit ${quantity} coils`);
      }
      checkRange(address, quantity);
      const bits: boolean[] = new Array(quantity);
      for (let i = 0; i < quantity; i++) bits[i] = ((pdu[6 + (i >> 3)]! >> (i & 7)) & 1) === 1;
      return { fc, address, bits };
    }
    case 16: {
      need(pdu, 6, "function 16", true);
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      quantityIn(quantity, 123, "function 16");
      const count = pdu[5]!;
      if (count !== quantity * 2 || pdu.length !== 6 + count) {
        throw new ModbusException(ExceptionCode.IllegalDataValue, `function 16: byte count ${count} and PDU of ${pdu.length} bytes do not fit ${quantity} registers`);
      }
      checkRange(address, quantity);
      return { fc, address, words: wordsAt(pdu, 6, quantity) };
    }
    case 23: {
      need(pdu, 10, "function 23", true);
      const read = { address: u16(pdu, 1), quantity: u16(pdu, 3) };
      const address = u16(pdu, 5);
      const quantity = u16(pdu, 7);
      quantityIn(read.quantity, 125, "function 23 read");
      quantityIn(quantity, 121, "function 23 write");
      const count = pdu[9]!;
      if (count !== quantity * 2 || pdu.length !== 10 + count) {
        throw new ModbusException(ExceptionCode.IllegalDataValue, `function 23: byte count ${count} and PDU of ${pdu.length} bytes do not fit ${quantity} registers`);
      }
      checkRange(read.address, read.quantity);
      checkRange(address, quantity);
      return { fc, read, write: { address, words: wordsAt(pdu, 10, quantity) } };
    }
    default:
      throw new ModbusException(ExceptionCode.IllegalFunction, `function ${fc} not supported`);
  }
}

function wordsAt(pdu: Uint8Array, at: number, n: number): Uint16Array {
  const w = new Uint16Array(n);
  for (let i = 0; i < n; i++) w[i] = u16(pdu, at + 2 * i);
  return w;
}

/** An ADU: MBAP header for `tid`/`unit` followed by `pdu`. */
export function frame(tid: number, unit: number, pdu: Uint8Array): Uint8Array {
  const out = new Uint8Array(MBAP_SIZE + pdu.length);
  out[0] = tid >> 8;
  out[1] = tid & 0xff;
  out[4] = (pdu.length + 1) >> 8;
  out[5] = (pdu.length + 1) & 0xff;
  out[6] = unit;
  out.set(pdu, MBAP_SIZE);
  return out;
}

export function exceptionFrame(tid: number, unit: number, fc: number, code: number): Uint8Array {
  return frame(tid, unit, Uint8Array.of((fc | 0x80) & 0xff, code));
}

/** Response PDU of a bit read: fc, byte count, bits packed LSB first. */
export function bitsResponse(fc: number, bits: ArrayLike<number>): Uint8Array {
  const n = Math.ceil(bits.length / 8);
  const out = new Uint8Array(2 + n);
  out[0] = fc;
  out[1] = n;
  for (let i = 0; i < bits.length; i++) if (bits[i]) out[2 + (i >> 3)]! |= 1 << (i & 7);
  return out;
}

/** Response PDU of a register read: fc, byte count, registers big-endian. */
export function wordsResponse(fc: number, words: Uint16Array): Uint8Array {
  const out = new Uint8Array(2 + words.length * 2);
  out[0] = fc;
  out[1] = words.length * 2;
  for (let i = 0; i < words.length; i++) {
    out[2 + 2 * i] = words[i]! >> 8;
    out[3 + 2 * i] = words[i]! & 0xff;
  }
  return out;
}

/** Response PDU of a write: 5/6 echo the request; 15/16 echo address and quantity. */
export function writeResponse(pdu: Uint8Array): Uint8Array {
  return pdu.slice(0, 5);
}
