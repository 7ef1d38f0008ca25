// Modbus RTU framing, pure (no I/O): the request ADU (unit, PDU, CRC-16 low byte first), the length of
// the answer a request expects (so that a reader knows when a frame is complete without waiting for
// the 3.5-character silence, which a pty or a TCP device server does not preserve), the check of an
// answer (unit, function, CRC), and the inter-frame silence a line's settings impose.
import type { LineSettings } from "../endpoint.ts";

/** CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), table-driven: it runs for every byte on the line. */
const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

export function crc16(buf: Uint8Array, end = buf.length): number {
  let crc = 0xffff;
  for (let i = 0; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ buf[i]!) & 0xff]!;
  return crc;
}

export type ReadFunction = 1 | 2 | 3 | 4;
export type WriteFunction = 5 | 6 | 15 | 16;

/** A request's PDU fields, as the line queues them. */
export type RtuRequest =
  | { fc: ReadFunction; address: number; count: number }
  | { fc: 5; address: number; value: boolean }
  | { fc: 6; address: number; value: number }
  | { fc: 15; address: number; values: boolean[] }
  | { fc: 16; address: number; values: number[] };

export class RtuFrameError extends Error {
  override name = "RtuFrameError";
}

/** The answer's CRC did not match its bytes (noise, a collision, a half-duplex echo). */
export class RtuCrcError extends RtuFrameError {
  override name = "RtuCrcError";
}

function withCrc(body: number[]): Buffer {
  const b = Buffer.alloc(body.length + 2);
  for (let i = 0; i < body.length; i++) b[i] = body[i]!;
  const crc = crc16(b, body.length);
  b[body.length] = crc & 0xff; // CRC goes low byte first, unlike every other field
  b[body.length + 1] = crc >>> 8;
  return b;
}

const hi = (n: number) => (n >>> 8) & 0xff;
const lo = (n: number) => n & 0xff;

/** The request ADU: unit id, function, fields, CRC. */
export function encodeRequest(unitId: number, r: RtuRequest): Buffer {
  const head = [unitId, r.fc, hi(r.address), lo(r.address)];
  switch (r.fc) {
    case 1:
    case 2:
    case 3:
    case 4:
      return withCrc([...head, hi(r.count), lo(r.count)]);
    case 5:
      return withCrc([...head, r.value ? 0xff : 0, 0]);
    case 6:
      return withCrc([...head, hi(r.value), lo(r.value)]);
    case 15: {
      const bytes = new Array<number>(Math.ceil(r.values.length / 8)).fill(0);
      r.values.forEach((v, i) => v && (bytes[i >> 3]! |= 1 << (i & 7)));
      return withCrc([...head, hi(r.values.length), lo(r.values.length), bytes.length, ...bytes]);
    }
    case 16:
      return withCrc([...head, hi(r.values.length), lo(r.values.length), r.values.length * 2, ...r.values.flatMap((v) => [hi(v), lo(v)])]);
  }
}

/**
 * Bytes the answer to `r` has in all, given the bytes received so far; undefined until enough have
 * arrived to tell (an exception answer is 5 bytes, a read's length is in its third byte).
 */
export function expectedLength(r: RtuRequest, rx: Uint8Array, rxLength: number): number | undefined {
  if (rxLength < 2) return undefined;
  if (rx[1]! & 0x80) return 5;
  if (r.fc <= 4) return rxLength < 3 ? undefined : 5 + rx[2]!;
  return 8; // writes echo unit, function, address and value/quantity
}

/**
 * Why a read's answer cannot be the answer to `r`, as soon as its byte count (third byte) is in: a count
 * other than the request's is noise or another frame, told at once instead of waiting out the timeout
 * for bytes that the count announces and that never come. null while it may still be right.
 */
export function wrongByteCount(r: RtuRequest, rx: Uint8Array, rxLength: number): string | null {
  if (rxLength < 3 || rx[1]! & 0x80 || !(r.fc === 1 || r.fc === 2 || r.fc === 3 || r.fc === 4)) return null;
  const want = r.fc <= 2 ? Math.ceil(r.count / 8) : r.count * 2;
  return rx[2] === want ? null : `answer announces ${rx[2]} bytes, expected ${want}`;
}

export type RtuAnswer = { ok: true; data: number[] | boolean[] } | { ok: false; exception: number };

/** Checks a complete answer (CRC, unit, function) and decodes it. */
export function decodeAnswer(unitId: number, r: RtuRequest, f: Uint8Array): RtuAnswer {
  const n = f.length;
  const crc = crc16(f, n - 2);
  if (f[n - 2] !== lo(crc) || f[n - 1] !== hi(crc)) throw new RtuCrcError(`CRC mismatch in a ${n}-byte answer from unit ${unitId}`);
  if (f[0] !== unitId) throw new RtuFrameError(`answer from unit ${f[0]}, expected ${unitId}`);
  if ((f[1]! & 0x7f) !== r.fc) throw new RtuFrameError(`answer to function ${f[1]! & 0x7f}, expected ${r.fc}`);
  if (f[1]! & 0x80) return { ok: false, exception: f[2]! };
  if (r.fc === 3 || r.fc === 4) {
    if (f[2] !== r.count * 2) throw new RtuFrameError(`answer carries ${f[2]} bytes, expected ${r.count * 2}`);
    const words = new Array<number>(r.count);
    for (let i = 0; i < r.count; i++) words[i] = (f[3 + 2 * i]! << 8) | f[4 + 2 * i]!;
    return { ok: true, data: words };
  }
  if (r.fc === 1 || r.fc === 2) {
    if (f[2] !== Math.ceil(r.count / 8)) throw new RtuFrameError(`answer carries ${f[2]} bytes, expected ${Math.ceil(r.count / 8)}`);
    const bits = new Array<boolean>(r.count);
    for (let i = 0; i < r.count; i++) bits[i] = ((f[3 + (i >> 3)]! >> (i & 7)) & 1) === 1;
    return { ok: true, data: bits };
  }
  return { ok: true, data: [] };
}

/**
 * The silence that must separate frames, in ms: 3.5 characters (start + data + parity + stop bits) at
 * the baud rate, and a fixed 1.75 ms above 19200 baud, as the Modbus serial line spec (2.5.1.1) says,
 * unless the URL's `silence=<ms>` says otherwise.
 */
export function silenceMs(s: LineSettings): number {
  if (s.silenceMs !== undefined) return s.silenceMs; // told by the URL
  if (s.baud > 19200) return 1.75;
  const bitsPerChar = 1 + s.dataBits + (s.parity === "none" ? 0 : 1) + s.stopBits;
  return (3.5 * bitsPerChar * 1000) / s.baud;
}
