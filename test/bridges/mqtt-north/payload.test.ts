// The uplink's wire format: what the cloud parses. JSON carries 64-bit integers as exact decimal strings
// (JSON numbers are doubles), MessagePack as int64; the encoder's fast path must not change either.
import { describe, expect, it } from "bun:test";
import { decode } from "@msgpack/msgpack";
import { PayloadEncoder } from "../../../schemas/wire.ts";
import type { DataFrame, Logged } from "../../../schemas/frames.ts";

const frame = (offset: number, value: DataFrame["value"]): Logged<DataFrame> => ({ kind: "data", tag: `t/${offset}`, value, ts: 1_700_000_000_000_000 + offset, quality: 0, source: "sim", offset, loggedAt: 0 });

describe("mqtt-north payloads", () => {
  it("encodes a JSON batch with every value type, 64-bit integers as exact decimal strings", () => {
    const frames = [frame(1, 1.5), frame(2, true), frame(3, "a \"quoted\" é"), frame(4, null), frame(5, 2n ** 63n - 1n), frame(6, -(2n ** 62n))];
    const body = JSON.parse(new PayloadEncoder("json").batch("gw", frames, 1, 6).toString("utf8"));
    expect(body).toEqual({
      gateway: "gw",
      first: 1,
      last: 6,
      frames: [
        { offset: 1, tag: "t/1", value: 1.5, ts: 1_700_000_000_000_001, quality: 0 },
        { offset: 2, tag: "t/2", value: true, ts: 1_700_000_000_000_002, quality: 0 },
        { offset: 3, tag: "t/3", value: "a \"quoted\" é", ts: 1_700_000_000_000_003, quality: 0 },
        { offset: 4, tag: "t/4", value: null, ts: 1_700_000_000_000_004, quality: 0 },
        { offset: 5, tag: "t/5", value: "9223372036854775807", ts: 1_700_000_000_000_005, quality: 0 },
        { offset: 6, tag: "t/6", value: "-4611686018427387904", ts: 1_700_000_000_000_006, quality: 0 },
      ],
    });
    expect(JSON.parse(new PayloadEncoder("json").frame(frame(7, 2n ** 60n)).toString())).toEqual({ offset: 7, tag: "t/7", value: "1152921504606846976", ts: 1_700_000_000_000_007, quality: 0 });
  });

  it("encodes NaN and the infinities in JSON as strings, not as a Good null; MessagePack keeps the doubles", () => {
    const frames = [frame(1, NaN), frame(2, Infinity), frame(3, -Infinity), frame(4, -0), frame(5, 5e-324)];
    const one = JSON.parse(new PayloadEncoder("json").frame(frames[0]!).toString("utf8"));
    expect(one).toEqual({ offset: 1, tag: "t/1", value: "NaN", ts: 1_700_000_000_000_001, quality: 0 });
    const body = JSON.parse(new PayloadEncoder("json").batch("gw", frames, 1, 5).toString("utf8"));
    expect(body.frames.map((f: { value: unknown }) => f.value)).toEqual(["NaN", "Infinity", "-Infinity", 0, 5e-324]);
    const packed = decode(new PayloadEncoder("msgpack").batch("gw", frames, 1, 5)) as { frames: { value: number }[] };
    expect(packed.frames.map((f) => f.value)).toEqual([NaN, Infinity, -Infinity, 0, 5e-324]); // -0 packs as the integer 0, as in JSON
  });

  it("keeps 64-bit integers as int64 in MessagePack and does not touch the frames it encodes", () => {
    const f = frame(1, 2n ** 63n - 1n);
    const body = decode(new PayloadEncoder("msgpack").batch("gw", [f], 1, 1), { useBigInt64: true }) as { frames: { value: unknown }[] };
    expect(body.frames[0]!.value).toBe(2n ** 63n - 1n);
    new PayloadEncoder("json").batch("gw", [f], 1, 1);
    expect(f.value).toBe(2n ** 63n - 1n);
  });
});
