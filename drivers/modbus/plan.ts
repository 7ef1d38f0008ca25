// The read plan: a poll group's tags per (unit id, area), sorted by address, merged into as few
// requests as the protocol allows (125 registers, 2000 bits per read). A small gap of unused
// addresses is read along rather than costing another round trip; a large one splits the read,
// because a device may refuse addresses that are not mapped (exception 2).
import type { Variable } from "../../schemas/index.ts";
import { registerCount, type RegisterLayout } from "../../schemas/registers.ts";

export type Area = "coil" | "discrete" | "holding" | "input";

/** One tag's place in the device: where it is and how it is laid out. */
export interface Slot {
  tag: Variable;
  unitId: number;
  area: Area;
  address: number;
  /** registers (or bits) it occupies */
  count: number;
  layout: RegisterLayout;
}

/** One read request and the tags it serves. */
export interface ReadBlock {
  unitId: number;
  area: Area;
  start: number;
  count: number;
  slots: Slot[];
}

export interface PlanLimits {
  maxGap: number;
  maxRegisters: number;
  maxBits: number;
}

export const isBitArea = (a: Area) => a === "coil" || a === "discrete";

/** Slot of a tag whose address has been validated (see validateModbusTags). */
export function slotOf(tag: Variable, defaultUnitId: number): Slot {
  const a = tag.address as { area: Area; address: number; unitId?: number; length?: number; bit?: number; byteOrder?: "BE" | "LE"; wordOrder?: "BE" | "LE" };
  const layout: RegisterLayout = { type: tag.type, byteOrder: a.byteOrder ?? "BE", wordOrder: a.wordOrder ?? "BE", length: a.length, bit: a.bit };
  return { tag, unitId: a.unitId ?? defaultUnitId, area: a.area, address: a.address, count: isBitArea(a.area) ? 1 : registerCount(layout), layout };
}

/** Pure: the reads that cover `slots`, each within the limits, in (unit, area, address) order. */
export function planReads(slots: readonly Slot[], limits: PlanLimits): ReadBlock[] {
  const sorted = [...slots].sort((a, b) => a.unitId - b.unitId || a.area.localeCompare(b.area) || a.address - b.address || b.count - a.count);
  const blocks: ReadBlock[] = [];
  let cur: ReadBlock | null = null;
  for (const s of sorted) {
    const bits = isBitArea(s.area);
    const max = bits ? limits.maxBits : limits.maxRegisters;
    // a gap of N registers costs 2N bytes; the same bytes hold 16N bits
    const gap = bits ? limits.maxGap * 16 : limits.maxGap;
    if (cur && cur.unitId === s.unitId && cur.area === s.area) {
      const end = cur.start + cur.count;
      const newEnd = Math.max(end, s.address + s.count);
      if (s.address - end <= gap && newEnd - cur.start <= max) {
        cur.count = newEnd - cur.start;
        cur.slots.push(s);
        continue;
      }
    }
    cur = { unitId: s.unitId, area: s.area, start: s.address, count: s.count, slots: [s] };
    blocks.push(cur);
  }
  return blocks;
}
