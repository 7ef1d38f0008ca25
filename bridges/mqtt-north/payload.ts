// Wire format of the uplink. One frame: {offset, tag, value, ts, quality} (ts in microseconds since the
// Unix epoch, quality an OPC UA StatusCode). A batch: {gateway, first, last, frames: [...]}, the frames in
// offset order. JSON carries 64-bit integers as decimal strings; MessagePack as int64.
import { Encoder } from "@msgpack/msgpack";
import type { DataFrame, Logged } from "../../schemas/frames.ts";

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

const toWire = (f: Logged<DataFrame>): WireFrame => ({ offset: f.offset, tag: f.tag, value: f.value, ts: f.ts, quality: f.quality });

const bigintAsString = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

export class PayloadEncoder {
  private readonly msgpack = new Encoder({ useBigInt64: true });
  readonly contentType: string;

  constructor(readonly format: PayloadFormat) {
    this.contentType = format === "json" ? "application/json" : "application/msgpack";
  }

  private encode(v: unknown): Buffer {
    if (this.format === "json") return Buffer.from(JSON.stringify(v, bigintAsString));
    const u8 = this.msgpack.encode(v);
    return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
  }

  frame(f: Logged<DataFrame>): Buffer {
    return this.encode(toWire(f));
  }

  batch(gateway: string, frames: readonly Logged<DataFrame>[], first: number, last: number): Buffer {
    return this.encode({ gateway, first, last, frames: frames.map(toWire) } satisfies WireBatch);
  }
}

/** Fills {tenant}, {device} and {tag} in a topic template. */
export function fillTopic(template: string, vars: { tenant?: string; device?: string; tag?: string }): string {
  return template.replace(/\{(tenant|device|tag)\}/g, (_m, k: "tenant" | "device" | "tag") => vars[k] ?? "");
}
