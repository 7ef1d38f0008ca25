// Checks a Modbus driver's register map at config load (server/validators.ts) and at driver init:
// addresses that are missing or malformed, layouts that cannot work (a string without a length, a
// bool on a register without a bit, a write to a read-only area) and tags whose registers overlap.
import type { Variable } from "../../schemas/index.ts";
import { registerCount } from "../../schemas/registers.ts";

export interface TagProblem {
  tag: string;
  field: string;
  message: string;
}

const AREAS = ["coil", "discrete", "holding", "input"] as const;
const KEYS = new Set(["area", "address", "unitId", "length", "bit", "byteOrder", "wordOrder"]);
const isInt = (v: unknown, min: number, max: number) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

interface Range {
  tag: Variable;
  unit: string;
  area: string;
  start: number;
  end: number; // exclusive
  bit?: number;
}

function checkOne(t: Variable): { problem?: TagProblem; range?: Range } {
  const p = (field: string, message: string) => ({ problem: { tag: t.tag, field, message } });
  const a = t.address as Record<string, unknown> | undefined;
  if (!a || typeof a !== "object") return p("address", "a Modbus tag needs an address, e.g. { area: holding, address: 0 }");
  for (const k of Object.keys(a)) if (!KEYS.has(k)) return p(`address.${k}`, `unknown field '${k}' (allowed: ${[...KEYS].join(", ")})`);
  if (!AREAS.includes(a.area as never)) return p("address.area", `expected one of ${AREAS.join(", ")}; got ${JSON.stringify(a.area)}`);
  const area = a.area as (typeof AREAS)[number];
  if (!isInt(a.address, 0, 65535)) return p("address.address", `expected an integer 0..65535; got ${JSON.stringify(a.address)}`);
  if (a.unitId !== undefined && !isInt(a.unitId, 0, 255)) return p("address.unitId", `expected an integer 0..255; got ${JSON.stringify(a.unitId)}`);
  for (const k of ["byteOrder", "wordOrder"]) {
    if (a[k] !== undefined && a[k] !== "BE" && a[k] !== "LE") return p(`address.${k}`, `expected BE or LE; got ${JSON.stringify(a[k])}`);
  }
  const bitArea = area === "coil" || area === "discrete";
  if (bitArea && t.type !== "bool") return p("type", `${area} holds bits: the type must be bool (a ${t.type} needs a holding or input register)`);
  if (bitArea && a.bit !== undefined) return p("address.bit", `bit applies to holding/input registers, not to a ${area}`);
  if (!bitArea && t.type === "bool" && a.bit === undefined) return p("address.bit", `a bool in a ${area} register needs bit: 0..15 (or use a coil/discrete input)`);
  if (a.bit !== undefined && t.type !== "bool") return p("address.bit", `bit is only for bool tags, not ${t.type}`);
  if (a.bit !== undefined && !isInt(a.bit, 0, 15)) return p("address.bit", `expected an integer 0..15; got ${JSON.stringify(a.bit)}`);
  if (t.type === "string" && a.length === undefined) return p("address.length", "a string needs length: registers it occupies (2 characters each)");
  if (a.length !== undefined && t.type !== "string") return p("address.length", `length is only for strings, not ${t.type}`);
  if (a.length !== undefined && !isInt(a.length, 1, 125)) return p("address.length", `expected an integer 1..125; got ${JSON.stringify(a.length)}`);
  if ((area === "input" || area === "discrete") && t.access !== "R") return p("access", `${area} is read-only on a Modbus device: access must be R`);
  const count = bitArea ? 1 : registerCount({ type: t.type, length: a.length as number | undefined });
  const start = a.address as number;
  if (start + count > 65536) return p("address.address", `${t.type} at ${start} runs past the last address 65535`);
  return { range: { tag: t, unit: a.unitId === undefined ? "default" : String(a.unitId), area, start, end: start + count, bit: a.bit as number | undefined } };
}

const describe = (r: Range) =>
  `${r.area} ${r.end - r.start > 1 ? `${r.start}..${r.end - 1}` : r.start}${r.bit !== undefined ? ` bit ${r.bit}` : ""} of '${r.tag.tag}' (${r.tag.type})`;

/** Problems of a Modbus driver's tags, first problem per tag; overlaps are reported on the later tag. */
export function validateModbusTags(_driverId: string, tags: readonly Variable[]): TagProblem[] {
  const problems: TagProblem[] = [];
  const ranges: Range[] = [];
  for (const t of tags) {
    const r = checkOne(t);
    if (r.problem) problems.push(r.problem);
    else if (r.range) ranges.push(r.range);
  }
  const byKey = new Map<string, Range[]>();
  for (const r of ranges) {
    const k = `${r.unit}/${r.area}`;
    byKey.set(k, [...(byKey.get(k) ?? []), r]);
  }
  for (const list of byKey.values()) {
    // a bool on one bit may share its register with the whole word (a status word and its bits are a
    // common map); only the same bit twice is a clash
    const bitsSeen = new Map<string, Range>();
    for (const r of list) {
      if (r.bit === undefined) continue;
      const k = `${r.start}/${r.bit}`;
      const first = bitsSeen.get(k);
      if (first) problems.push({ tag: r.tag.tag, field: "address", message: `${describe(r)} overlaps ${describe(first)}` });
      else bitsSeen.set(k, r);
    }
    const words = list.filter((r) => r.bit === undefined).sort((x, y) => x.start - y.start);
    let widest: Range | undefined; // the range reaching furthest among those before
    for (const r of words) {
      if (widest && r.start < widest.end) problems.push({ tag: r.tag.tag, field: "address", message: `${describe(r)} overlaps ${describe(widest)}` });
      if (!widest || r.end > widest.end) widest = r;
    }
  }
  return problems;
}

/**
 * On an RTU line (serial://, rtu+tcp://) unit 0 is the broadcast address (every slave executes a write,
 * none answers: the write would reach every device and be acked outcome unknown) and 248-255 are
 * reserved; over TCP both are common ("the device itself"). The first unit id a tag uses outside 1-247,
 * as a driver config path ("tag '<name>' address.unitId", or "config.unitId" for the driver's default).
 */
export function rtuUnitProblem(defaultUnitId: number, tags: readonly Variable[]): { path: string; message: string } | null {
  for (const t of tags) {
    const own = (t.address as { unitId?: unknown } | undefined)?.unitId;
    const unit = typeof own === "number" ? own : defaultUnitId;
    if (unit >= 1 && unit <= 247) continue;
    const message =
      unit === 0
        ? "unit 0 is the broadcast address of an RTU line: every slave would execute a write and none answers, and no read is ever answered (unit ids 1-247)"
        : `unit ${unit} is reserved on an RTU line (unit ids 1-247)`;
    return { path: typeof own === "number" ? `tag '${t.tag}' address.unitId` : "config.unitId", message };
  }
  return null;
}
