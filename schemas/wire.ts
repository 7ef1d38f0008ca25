// Wire format of the uplinks (MQTT and NATS: one codec, so the cloud reads both the same way). One frame: {offset, tag, value, ts, quality} (ts in microseconds since the
// Unix epoch, quality an OPC UA StatusCode). A batch: {gateway, first, last, frames: [...]}, the frames in
// offset order. JSON carries 64-bit integers as decimal strings, NaN and infinities as "NaN", "Infinity",
// "-Infinity"; MessagePack as int64 and float64.
import { Encoder } from "@msgpack/msgpack";
import type { DataFrame, Logged } from "./frames.ts";

export type PayloadFormat = "json" | "msgpack";

export interface WireFrame {
  offset: number;
  tag: string;
  value: number | boolean | string | null | bigint;
  ts: number;
  quality: number;
}

export interface WireBatch {
  gateway: string;
  first: number;
  last: number;
  frames: WireFrame[];
}

/**
 * JSON has no 64-bit integers: they go out as decimal strings (exact); MessagePack keeps int64. Nor NaN or
 * infinities (JSON.stringify makes them null: a Good null, indistinguishable from no value): they go out
 * as "NaN", "Infinity", "-Infinity"; MessagePack keeps the float64.
 */
const jsonWireValue = (v: DataFrame["value"]): WireFrame["value"] =>
  typeof v === "number" ? (v - v === 0 ? v : String(v)) : typeof v === "bigint" ? v.toString() : v;

const toWire = (f: Logged<DataFrame>, json: boolean): WireFrame => ({
  offset: f.offset,
  tag: f.tag,
  value: json ? jsonWireValue(f.value) : f.value,
  ts: f.ts,
  quality: f.quality,
});

export class PayloadEncoder {
  private readonly msgpack = new Encoder({ useBigInt64: true });
  private readonly isJson: boolean;
  readonly contentType: string;

  constructor(readonly format: PayloadFormat) {
    this.isJson = format === "json";
    this.contentType = this.isJson ? "application/json" : "application/msgpack";
  }

  // Hot path (every frame of the uplink): bigints are converted in toWire so JSON.stringify runs without
  // a replacer function, which made it about 3x slower (measured: 1.4M vs 4.2M frames/s).
  private encode(v: unknown): Buffer {
    if (this.isJson) return Buffer.from(JSON.stringify(v));
    const u8 = this.msgpack.encode(v);
    return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
  }

  frame(f: Logged<DataFrame>): Buffer {
    return this.encode(toWire(f, this.isJson));
  }

  batch(gateway: string, frames: readonly Logged<DataFrame>[], first: number, last: number): Buffer {
    const wire: WireFrame[] = new Array(frames.length);
    for (let i = 0; i < frames.length; i++) wire[i] = toWire(frames[i]!, this.isJson);
    return this.encode({ gateway, first, last, frames: wire } satisfies WireBatch);
  }
}
