// The output encoding of WebAssembly plugins (ABI.md, "Frames out"): a compact little-endian binary
// list of {tag, value, ts?, quality?} that the AssemblyScript SDK writes into a reused buffer and the
// host reads here without copying the buffer. Chosen over MessagePack: an encoder in a plugin is 40
// lines of stores, and the host reads a frame with a few DataView loads and one TextDecoder call.
import type { PayloadFailure, PluginFrame } from "../protocol.ts";
import { WasmOutputError, WasmPayloadFailed } from "./errors.ts";

/** A frame as a plugin produces it (protocol.ts): the host adds kind, source, a missing ts and quality. */
export type DecodedFrame = PluginFrame;

export const ValueType = { null: 0, f64: 1, false: 2, true: 3, string: 4, i64: 5 } as const;
export const FrameFlag = { ts: 1, quality: 2 } as const;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads `len` bytes of frames at `ptr` of `mem`. Throws WasmOutputError naming the byte that is wrong. */
export function readFrames(mem: Uint8Array, ptr: number, len: number, call = "decode"): DecodedFrame[] {
  if (ptr + len > mem.length) throw new WasmOutputError(call, `buffer ${ptr}+${len} lies outside memory (${mem.length} bytes)`);
  if (len === 0) return [];
  if (len < 4) throw new WasmOutputError(call, `buffer of ${len} bytes has no frame count`);
  const dv = new DataView(mem.buffer, mem.byteOffset + ptr, len);
  const count = dv.getUint32(0, true);
  const frames: DecodedFrame[] = new Array(count);
  let at = 4;
  const need = (n: number, what: string) => {
    if (at + n > len) throw new WasmOutputError(call, `${what} runs past the end of the buffer at byte ${at}`);
  };
  for (let i = 0; i < count; i++) {
    need(4, `frame ${i} header`);
    const type = dv.getUint8(at);
    const flags = dv.getUint8(at + 1);
    const tagLen = dv.getUint16(at + 2, true);
    at += 4;
    need(tagLen, `frame ${i} tag`);
    if (tagLen === 0) throw new WasmOutputError(call, `frame ${i} has an empty tag`);
    const tag = utf8.decode(mem.subarray(ptr + at, ptr + at + tagLen));
    at += tagLen;
    let value: DecodedFrame["value"];
    switch (type) {
      case ValueType.null:
        value = null;
        break;
      case ValueType.f64:
        need(8, `frame ${i} value`);
        value = dv.getFloat64(at, true);
        at += 8;
        break;
      case ValueType.false:
        value = false;
        break;
      case ValueType.true:
        value = true;
        break;
      case ValueType.string: {
        need(4, `frame ${i} string length`);
        const n = dv.getUint32(at, true);
        at += 4;
        need(n, `frame ${i} string`);
        value = utf8.decode(mem.subarray(ptr + at, ptr + at + n));
        at += n;
        break;
      }
      case ValueType.i64: {
        need(8, `frame ${i} value`);
        const big = dv.getBigInt64(at, true);
        // a 64-bit integer stays exact: a number only when it is one without loss
        value = big >= -9007199254740991n && big <= 9007199254740991n ? Number(big) : big;
        at += 8;
        break;
      }
      default:
        throw new WasmOutputError(call, `frame ${i} ('${tag}') has unknown value type ${type} at byte ${at - tagLen - 4}`);
    }
    const frame: DecodedFrame = { tag, value };
    if (flags & FrameFlag.ts) {
      need(8, `frame ${i} ts`);
      frame.ts = dv.getFloat64(at, true);
      at += 8;
    }
    if (flags & FrameFlag.quality) {
      need(4, `frame ${i} quality`);
      frame.quality = dv.getUint32(at, true);
      at += 4;
    }
    frames[i] = frame;
  }
  if (at !== len) throw new WasmOutputError(call, `${len - at} bytes left after ${count} frames`);
  return frames;
}

/** The length word of a failed payload's entry in a packed batch (followed by u32 length + UTF-8 reason). */
const FAILED = 0xffffffff;
const REASON_MAX = 512;

/**
 * A decoded batch as one buffer for the trip across the process boundary: per payload a u32 length
 * and the module's output bytes (length 0: no frames), or for a failed payload 0xFFFFFFFF, a u32 length
 * and its reason in UTF-8 (so that the gateway refuses that payload, saying why). Cloning one
 * Uint8Array costs a copy, while cloning thousands of frame objects costs microseconds each (bench
 * wasm: batch 1000 via the child).
 */
export function packBatch(outputs: readonly (Uint8Array | PayloadFailure)[]): Uint8Array {
  const enc = new TextEncoder();
  const parts = outputs.map((o) => ("failed" in o ? enc.encode(o.failed.slice(0, REASON_MAX)) : o));
  let size = 0;
  for (const p of parts) size += 4 + p.length;
  size += 4 * outputs.filter((o) => "failed" in o).length;
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  let at = 0;
  parts.forEach((p, i) => {
    if ("failed" in outputs[i]!) {
      dv.setUint32(at, FAILED, true);
      at += 4;
    }
    dv.setUint32(at, p.length, true);
    buf.set(p, at + 4);
    at += 4 + p.length;
  });
  return buf;
}

const utf8Lenient = new TextDecoder("utf-8");

/**
 * The frames of a packBatch buffer, one list per payload (on the gateway's side of the boundary). A
 * payload the module failed on, or whose output is malformed, gives no frames and is told to `onFailed`
 * (WasmPayloadFailed or WasmOutputError); the others still count.
 */
export function readPackedBatch(buf: Uint8Array, onFailed?: (index: number, err: WasmOutputError | WasmPayloadFailed) => void): DecodedFrame[][] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: DecodedFrame[][] = [];
  for (let at = 0; at + 4 <= buf.length; ) {
    let len = dv.getUint32(at, true);
    if (len === FAILED && at + 8 <= buf.length) {
      len = Math.min(dv.getUint32(at + 4, true), buf.length - at - 8);
      onFailed?.(out.length, new WasmPayloadFailed(utf8Lenient.decode(buf.subarray(at + 8, at + 8 + len))));
      out.push([]);
      at += 8 + len;
      continue;
    }
    try {
      out.push(readFrames(buf, at + 4, Math.min(len, buf.length - at - 4), "decode"));
    } catch (e) {
      if (!(e instanceof WasmOutputError)) throw e;
      onFailed?.(out.length, e);
      out.push([]);
    }
    at += 4 + len;
  }
  return out;
}

/** Encodes frames the way a plugin does (for a driver's write input and for tests of the reader). */
export function encodeFrames(frames: readonly DecodedFrame[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: number[] = [];
  const out = new DataView(new ArrayBuffer(8));
  const push = (n: number, set: (dv: DataView) => void) => {
    set(out);
    for (let i = 0; i < n; i++) parts.push(out.getUint8(i));
  };
  push(4, (d) => d.setUint32(0, frames.length, true));
  for (const f of frames) {
    const tag = enc.encode(f.tag);
    const type =
      f.value === null ? ValueType.null : typeof f.value === "boolean" ? (f.value ? ValueType.true : ValueType.false)
      : typeof f.value === "string" ? ValueType.string : typeof f.value === "bigint" ? ValueType.i64 : ValueType.f64;
    const flags = (f.ts === undefined ? 0 : FrameFlag.ts) | (f.quality === undefined ? 0 : FrameFlag.quality);
    parts.push(type, flags, tag.length & 0xff, tag.length >> 8, ...tag);
    if (type === ValueType.f64) push(8, (d) => d.setFloat64(0, f.value as number, true));
    if (type === ValueType.i64) push(8, (d) => d.setBigInt64(0, f.value as bigint, true));
    if (type === ValueType.string) {
      const s = enc.encode(f.value as string);
      push(4, (d) => d.setUint32(0, s.length, true));
      parts.push(...s);
    }
    if (f.ts !== undefined) push(8, (d) => d.setFloat64(0, f.ts as number, true));
    if (f.quality !== undefined) push(4, (d) => d.setUint32(0, f.quality as number, true));
  }
  return Uint8Array.from(parts);
}
