// The Modbus register codec: typed values <-> 16-bit registers, with byte order (within a register)
// and word order (BE: high word first, ABCD; LE: low word first, CDAB). Pure functions, no I/O, so the
// Modbus driver, the Modbus slave bridge and the demo PLC share one definition of the wire layout.
import type { DataType } from "./config.ts";
import type { Value } from "./frames.ts";

export type Order = "BE" | "LE";

export interface RegisterLayout {
  type: DataType;
  /** bytes within a register; LE swaps the two bytes of every register */
  byteOrder?: Order;
  /** words of a 32/64-bit value; LE puts the low word first (CDAB) */
  wordOrder?: Order;
  /** registers of a string (2 ASCII characters each) */
  length?: number;
  /** bool stored as one bit (0 = least significant) of a register */
  bit?: number;
}

export class RegisterCodecError extends Error {
  override name = "RegisterCodecError";
}

/** Registers a value of this layout occupies (a bool on a coil/discrete input takes one bit, counted as 1). */
export function registerCount(l: RegisterLayout): number {
  switch (l.type) {
    case "int32":
    case "uint32":
    case "float32":
      return 2;
    case "int64":
    case "uint64":
    case "float64":
      return 4;
    case "string":
      return l.length ?? 1;
    default:
      return 1;
  }
}

const swap16 = (r: number) => ((r & 0xff) << 8) | ((r >>> 8) & 0xff);

// decoding is synchronous, so one scratch view serves every numeric value without an allocation each
const scratch = new DataView(new ArrayBuffer(8));

/** The value's bytes in big-endian order (what DataView reads with littleEndian=false). */
function gather(regs: ArrayLike<number>, at: number, n: number, l: RegisterLayout): DataView {
  const view = n <= 4 && l.type !== "string" ? scratch : new DataView(new ArrayBuffer(n * 2));
  const wordsReversed = l.wordOrder === "LE" && l.type !== "string";
  for (let i = 0; i < n; i++) {
    let r = regs[at + (wordsReversed ? n - 1 - i : i)]! & 0xffff;
    if (l.byteOrder === "LE") r = swap16(r);
    view.setUint16(i * 2, r);
  }
  return view;
}

function scatter(view: DataView, l: RegisterLayout): number[] {
  const n = view.byteLength / 2;
  const out = new Array<number>(n);
  const wordsReversed = l.wordOrder === "LE" && l.type !== "string";
  for (let i = 0; i < n; i++) {
    let r = view.getUint16(i * 2);
    if (l.byteOrder === "LE") r = swap16(r);
    out[wordsReversed ? n - 1 - i : i] = r;
  }
  return out;
}

/**
 * Decodes the value at `regs[at..]`. 64-bit integers are always bigint (exact); float32 is widened to
 * a double; strings are ASCII, first character in the register's high byte, trailing NULs trimmed.
 */
export function decodeRegisters(regs: ArrayLike<number>, at: number, l: RegisterLayout): Value {
  if (l.type === "bool") return ((regs[at]! >>> (l.bit ?? 0)) & 1) === 1;
  // the poll loop's most common case, without a DataView per value
  if (l.type === "uint16" || l.type === "int16") {
    if (at >= regs.length) throw new RegisterCodecError(`${l.type} at register ${at}: only ${regs.length} read`);
    const r = l.byteOrder === "LE" ? swap16(regs[at]! & 0xffff) : regs[at]! & 0xffff;
    return l.type === "int16" && r > 0x7fff ? r - 0x10000 : r;
  }
  const n = registerCount(l);
  if (at + n > regs.length) throw new RegisterCodecError(`${l.type} at register ${at} needs ${n} registers, only ${regs.length - at} read`);
  const v = gather(regs, at, n, l);
  switch (l.type) {
    case "int16":
      return v.getInt16(0);
    case "uint16":
      return v.getUint16(0);
    case "int32":
      return v.getInt32(0);
    case "uint32":
      return v.getUint32(0);
    case "float32":
      return v.getFloat32(0);
    case "int64":
      return v.getBigInt64(0);
    case "uint64":
      return v.getBigUint64(0);
    case "float64":
      return v.getFloat64(0);
    case "string": {
      let end = v.byteLength;
      while (end > 0 && v.getUint8(end - 1) === 0) end--;
      let s = "";
      for (let i = 0; i < end; i++) s += String.fromCharCode(v.getUint8(i));
      return s;
    }
  }
  throw new RegisterCodecError(`unknown type ${String(l.type)}`);
}

function integerOf(value: Value, type: string, min: number, max: number): number {
  const n = typeof value === "bigint" ? Number(value) : typeof value === "boolean" ? (value ? 1 : 0) : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new RegisterCodecError(`${JSON.stringify(typeof value === "bigint" ? value.toString() : value)} is not a ${type} (${min}..${max})`);
  return n;
}

function bigintOf(value: Value, type: string, signed: boolean): bigint {
  let b: bigint;
  try {
    b = typeof value === "bigint" ? value : typeof value === "number" && Number.isInteger(value) ? BigInt(value) : BigInt(String(value));
  } catch {
    throw new RegisterCodecError(`${JSON.stringify(value)} is not a ${type}`);
  }
  const lo = signed ? -(1n << 63n) : 0n;
  const hi = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  if (b < lo || b > hi) throw new RegisterCodecError(`${b} is out of range for ${type}`);
  return b;
}

function numberOf(value: Value, type: string): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  throw new RegisterCodecError(`${JSON.stringify(value)} is not a ${type}`);
}

/**
 * Encodes a value into registers of the layout (the inverse of decodeRegisters). A bool with a `bit`
 * needs the register's current content: pass it as `current` (read-modify-write).
 */
export function encodeRegisters(value: Value, l: RegisterLayout, current = 0): number[] {
  if (l.type === "bool") {
    const on = value === true || value === 1 || value === "true" || value === 1n;
    const mask = 1 << (l.bit ?? 0);
    return [on ? (current | mask) & 0xffff : current & ~mask & 0xffff];
  }
  const n = registerCount(l);
  const v = new DataView(new ArrayBuffer(n * 2));
  switch (l.type) {
    case "int16":
      v.setInt16(0, integerOf(value, "int16", -0x8000, 0x7fff));
      break;
    case "uint16":
      v.setUint16(0, integerOf(value, "uint16", 0, 0xffff));
      break;
    case "int32":
      v.setInt32(0, integerOf(value, "int32", -0x80000000, 0x7fffffff));
      break;
    case "uint32":
      v.setUint32(0, integerOf(value, "uint32", 0, 0xffffffff));
      break;
    case "float32":
      v.setFloat32(0, numberOf(value, "float32"));
      break;
    case "float64":
      v.setFloat64(0, numberOf(value, "float64"));
      break;
    case "int64":
      v.setBigInt64(0, bigintOf(value, "int64", true));
      break;
    case "uint64":
      v.setBigUint64(0, bigintOf(value, "uint64", false));
      break;
    case "string": {
      const s = String(value);
      if (s.length > n * 2) throw new RegisterCodecError(`string of ${s.length} characters does not fit ${n} registers`);
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) throw new RegisterCodecError(`string has a non-ASCII character at ${i}`);
        v.setUint8(i, c);
      }
      break;
    }
    default:
      throw new RegisterCodecError(`unknown type ${String(l.type)}`);
  }
  return scatter(v, l);
}
