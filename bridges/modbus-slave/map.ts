// The slave's process image: per unit and area, the current registers/coils of the mapped tags,
// re-encoded when a tag's value changes (so a read is a copy, whatever the rate of reads), the quality
// of each entry (a read touching a Bad or never-read tag answers exception 0B, per the entry's onBad),
// and the inverse for writes: which entries a write covers and the engineering value it asks for.
import { decodeRegisters, encodeRegisters, RegisterCodecError } from "../../schemas/registers.ts";
import { Quality, type DataType, type Value } from "../../schemas/index.ts";
import type { Area, ResolvedEntry } from "./config.ts";
import { ExceptionCode, ModbusException } from "./protocol.ts";

const INT_LIMITS: Partial<Record<DataType, [number, number]>> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
};

/**
 * Addresses [base, base+length) of one unit/area: values and, per address, the owning entry (-1:
 * unmapped) and whether a read of it must fail (1: its entry is Bad or never read, and onBad is
 * "exception"). A flag per address, not a lookup of the entry's quality, and a count of flagged
 * addresses so that a read of an area where every tag is usable is the same single copy as before
 * quality existed (measured: checking the flags inside the copy loop cost 12-19% of an in-memory read of
 * 125 registers; with the count, within noise of the old read).
 */
class AreaImage {
  readonly values: Uint16Array;
  readonly owner: Int32Array;
  readonly unusable: Uint8Array;
  constructor(
    readonly base: number,
    length: number,
  ) {
    this.values = new Uint16Array(length);
    this.owner = new Int32Array(length).fill(-1);
    this.unusable = new Uint8Array(length);
  }

  /** addresses flagged in `unusable` */
  unusableCount = 0;

  /** Flags or clears the addresses of one entry, keeping the count. */
  flag(at: number, width: number, isUnusable: boolean): void {
    const now = isUnusable ? 1 : 0;
    if (this.unusable[at] === now) return; // an entry's addresses are flagged together
    this.unusable.fill(now, at, at + width);
    this.unusableCount += isUnusable ? width : -width;
  }
}

/** Bad (top bits 10) or the reserved 11: nothing the gateway can vouch for. */
const isUnusable = (quality: number) => quality >>> 30 >= 2;

/** The quality of an entry whose tag has no value yet (the log holds none). */
export const NEVER_READ = Quality.Bad_WaitingForInitialData;

/** A write decoded against the map: the entry and the engineering value asked for. */
export interface PlannedWrite {
  entry: ResolvedEntry;
  value: Value;
}

export class RegisterImage {
  private readonly areas = new Map<string, AreaImage>();
  private readonly units = new Set<number>();
  private readonly byTag = new Map<string, ResolvedEntry[]>();
  /** latest quality per entry (by entry index), NEVER_READ until the tag's first frame */
  readonly quality: Uint32Array;

  constructor(
    readonly entries: readonly ResolvedEntry[],
    /** unmapped addresses inside a read touching a mapped one: zero, or exception 02 */
    private readonly unmapped: "zero" | "exception" = "zero",
  ) {
    // Each area image spans only its mapped addresses, so a sparse map with many units stays small.
    const spans = new Map<string, [number, number]>();
    for (const e of entries) {
      const k = key(e.unitId, e.area);
      const s = spans.get(k);
      spans.set(k, s ? [Math.min(s[0], e.address), Math.max(s[1], e.address + e.width)] : [e.address, e.address + e.width]);
      this.units.add(e.unitId);
      (this.byTag.get(e.tag) ?? this.byTag.set(e.tag, []).get(e.tag)!).push(e);
    }
    for (const [k, [lo, hi]] of spans) this.areas.set(k, new AreaImage(lo, hi - lo));
    this.quality = new Uint32Array(entries.length).fill(NEVER_READ);
    for (const e of entries) {
      const img = this.areas.get(key(e.unitId, e.area))!; // created above for every entry's unit/area
      img.owner.fill(e.index, e.address - img.base, e.address - img.base + e.width);
      if (e.onBad === "exception") img.flag(e.address - img.base, e.width, true);
    }
  }

  hasUnit(unit: number): boolean {
    return this.units.has(unit);
  }

  entriesOf(tag: string): readonly ResolvedEntry[] {
    return this.byTag.get(tag) ?? [];
  }

  /**
   * Records a tag's latest reading in every entry mapping it. Good or Uncertain: the value is re-encoded
   * (a value that cannot be encoded leaves zeros) and served. Bad, per the entry's onBad: "exception"
   * flags its addresses (reads answer 0B, the old value stays underneath), "hold" keeps the old value,
   * "zero" serves zeros. Uncertain is served: it is a usable value (after a restart, the last one of the
   * previous run, until the driver reads the tag again), and Modbus cannot say more than that.
   */
  update(tag: string, value: Value, quality: number): void {
    const list = this.byTag.get(tag);
    if (!list) return;
    const bad = isUnusable(quality);
    for (const e of list) {
      this.quality[e.index] = quality;
      const img = this.areas.get(key(e.unitId, e.area))!;
      const at = e.address - img.base;
      if (bad) {
        if (e.onBad === "exception") img.flag(at, e.width, true);
        else if (e.onBad === "zero") img.values.fill(0, at, at + e.width);
        continue;
      }
      img.flag(at, e.width, false);
      if (e.width === 1 && (e.area === "coil" || e.area === "discrete")) {
        img.values[at] = truthy(value) ? 1 : 0;
        continue;
      }
      let words: number[];
      try {
        words = encodeRegisters(toRaw(e, value), { type: e.type, byteOrder: e.byteOrder, wordOrder: e.wordOrder, length: e.length });
      } catch (err) {
        if (!(err instanceof RegisterCodecError)) throw err;
        words = new Array(e.width).fill(0);
      }
      for (let i = 0; i < e.width; i++) img.values[at + i] = words[i] ?? 0;
    }
  }

  /**
   * Current values of `quantity` addresses from `address` (bits as 0/1). Exception 02 when none is
   * mapped (or some are not, with unmapped: exception); 0B when one belongs to an unusable entry.
   */
  read(unit: number, area: Area, address: number, quantity: number): Uint16Array {
    const img = this.areas.get(key(unit, area));
    const out = new Uint16Array(quantity);
    let mapped = 0;
    let unusable = 0;
    if (img) {
      const from = Math.max(address, img.base);
      const to = Math.min(address + quantity, img.base + img.values.length);
      for (let a = from; a < to; a++) {
        const i = a - img.base;
        if (img.owner[i]! >= 0) {
          out[a - address] = img.values[i]!;
          mapped++;
        }
      }
      if (img.unusableCount > 0) for (let i = from - img.base; i < to - img.base; i++) unusable |= img.unusable[i]!;
    }
    if (mapped === 0) throw new ModbusException(ExceptionCode.IllegalDataAddress, `unit ${unit} ${area} ${address}..${address + quantity - 1}: nothing mapped`);
    if (mapped < quantity && this.unmapped === "exception") {
      throw new ModbusException(ExceptionCode.IllegalDataAddress, `unit ${unit} ${area} ${address}..${address + quantity - 1}: partly unmapped`);
    }
    if (unusable) throw this.unusableIn(img!, unit, area, address, quantity); // unusable is set only where img exists
    return out;
  }

  /** The exception for a read that touched an unusable entry, naming the first such tag (off the hot path). */
  private unusableIn(img: AreaImage, unit: number, area: Area, address: number, quantity: number): ModbusException {
    const from = Math.max(address, img.base);
    let tag = "?";
    for (let a = from; a < address + quantity; a++) {
      if (img.unusable[a - img.base]) {
        const e = this.entries[img.owner[a - img.base]!]!; // unusable is set only on owned addresses
        tag = `${e.tag} (quality 0x${this.quality[e.index]!.toString(16)})`;
        break;
      }
    }
    return new ModbusException(ExceptionCode.GatewayTargetFailed, `unit ${unit} ${area} ${address}..${address + quantity - 1}: ${tag} is Bad or was never read`);
  }

  /** Entries whose latest quality is Bad or that were never read. */
  badEntries(): number {
    let n = 0;
    for (const q of this.quality) if (isUnusable(q)) n++;
    return n;
  }

  /**
   * Decodes a write of registers (holding) or coils against the map. Every address must be mapped and
   * every entry touched wholly covered (half of a float32 cannot be written): exception 02 otherwise.
   */
  planWrite(unit: number, area: "coil" | "holding", address: number, values: ArrayLike<number>): PlannedWrite[] {
    const img = this.areas.get(key(unit, area));
    const end = address + values.length;
    const where = `unit ${unit} ${area} ${address}..${end - 1}`;
    if (!img || address < img.base || end > img.base + img.values.length) throw new ModbusException(ExceptionCode.IllegalDataAddress, `${where}: not mapped`);
    const plans: PlannedWrite[] = [];
    let a = address;
    while (a < end) {
      const idx = img.owner[a - img.base]!;
      if (idx < 0) throw new ModbusException(ExceptionCode.IllegalDataAddress, `${where}: address ${a} not mapped`);
      const e = this.entries[idx]!; // owner holds indexes into entries, set in the constructor
      if (e.address < address || e.address + e.width > end) {
        throw new ModbusException(ExceptionCode.IllegalDataAddress, `${where}: covers only part of ${e.tag} (${e.address}..${e.address + e.width - 1})`);
      }
      const at = e.address - address;
      if (area === "coil") plans.push({ entry: e, value: values[at] !== 0 });
      else {
        const raw = decodeRegisters(values, at, { type: e.type, byteOrder: e.byteOrder, wordOrder: e.wordOrder, length: e.length });
        plans.push({ entry: e, value: toEngineering(e, raw) });
      }
      a = e.address + e.width;
    }
    return plans;
  }
}

const key = (unit: number, area: Area) => `${unit}/${area}`;

const truthy = (v: Value): boolean => v === true || (typeof v === "number" && v !== 0) || (typeof v === "bigint" && v !== 0n) || v === "true";

/**
 * engineering -> raw for the entry's register type: (value - offset) / scale; integers rounded and
 * saturated to their type so that an out-of-range reading shows as the type's limit, not as garbage.
 */
export function toRaw(e: ResolvedEntry, value: Value): Value {
  if (value === null) return 0;
  if (e.type === "string") return String(value);
  if (typeof value === "boolean") value = value ? 1 : 0;
  if (typeof value === "string") {
    const n = Number(value);
    value = /^-?\d+$/.test(value.trim()) && (e.type === "int64" || e.type === "uint64") ? BigInt(value.trim()) : n;
  }
  const scaled = e.scale !== 1 || e.offset !== 0;
  if (typeof value === "bigint") {
    if (!scaled && (e.type === "int64" || e.type === "uint64")) return clampBig(value, e.type);
    value = Number(value);
  }
  let raw = scaled ? (value - e.offset) / e.scale : value;
  if (e.type === "float32" || e.type === "float64") return raw;
  if (!Number.isFinite(raw)) raw = 0;
  raw = Math.round(raw);
  if (e.type === "int64" || e.type === "uint64") return clampBig(BigInt(raw), e.type);
  const lim = INT_LIMITS[e.type];
  return lim ? Math.min(lim[1], Math.max(lim[0], raw)) : raw;
}

function clampBig(v: bigint, type: "int64" | "uint64"): bigint {
  const lo = type === "int64" ? -(1n << 63n) : 0n;
  const hi = type === "int64" ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  return v < lo ? lo : v > hi ? hi : v;
}

/** raw -> engineering for a write: raw * scale + offset (64-bit integers stay exact when unscaled). */
export function toEngineering(e: ResolvedEntry, raw: Value): Value {
  if (e.scale === 1 && e.offset === 0) return raw;
  if (typeof raw === "bigint") raw = Number(raw);
  if (typeof raw !== "number") return raw;
  return raw * e.scale + e.offset;
}
