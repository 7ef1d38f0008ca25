// Every reading of a raw register range, for the Modbus inspector: each numeric type in each of the four
// byte/word orders (ABCD, CDAB, BADC, DCBA) at every start register, decoded by the one register codec
// (registers.ts) that the driver polls with, so that what the inspector shows is what a tag with that
// layout would read. Also the variables.yml entry of a chosen reading. Pure functions, no I/O: the
// server answers the raw registers and the console decodes them with this module.
import { decodeRegisters, registerCount, type Order, type RegisterLayout } from "./registers.ts";

/** The numeric types an integrator chooses between (bool and string are read differently). */
export const NUMERIC_TYPES = ["int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"] as const;
export type NumericType = (typeof NUMERIC_TYPES)[number];

/** The four orders by the names vendors' manuals use: the bytes of a 32-bit value A (most significant) .. D. */
export const ORDERS = {
  ABCD: { byteOrder: "BE", wordOrder: "BE" },
  CDAB: { byteOrder: "BE", wordOrder: "LE" },
  BADC: { byteOrder: "LE", wordOrder: "BE" },
  DCBA: { byteOrder: "LE", wordOrder: "LE" },
} as const satisfies Record<string, { byteOrder: Order; wordOrder: Order }>;
export type OrderName = keyof typeof ORDERS;
export const ORDER_NAMES = Object.keys(ORDERS) as OrderName[];

/** One decoded value: a number, or a decimal string for 64-bit integers (exact, as the driver keeps them). */
export type DecodedValue = number | string;

export interface RegisterReading {
  /** the register (absolute address) the value starts at */
  address: number;
  type: NumericType;
  order: OrderName;
  value: DecodedValue;
}

/** Orders that give different readings for a type: a 16-bit value has no word order. */
export function ordersOf(type: NumericType): OrderName[] {
  return type === "int16" || type === "uint16" ? ["ABCD", "BADC"] : ORDER_NAMES;
}

/** The value of `type` in `order` starting at `regs[at]`, or null when the range ends before it does. */
export function decodeAt(regs: readonly number[], at: number, type: NumericType, order: OrderName): DecodedValue | null {
  const layout: RegisterLayout = { type, ...ORDERS[order] };
  if (at < 0 || at + registerCount(layout) > regs.length) return null;
  const v = decodeRegisters(regs, at, layout);
  return typeof v === "bigint" ? v.toString() : (v as number);
}

/** Every reading of every numeric type and order at every start register of a range read from `start`. */
export function decodeAll(regs: readonly number[], start: number): RegisterReading[] {
  const out: RegisterReading[] = [];
  for (let at = 0; at < regs.length; at++) {
    for (const type of NUMERIC_TYPES) {
      for (const order of ordersOf(type)) {
        const value = decodeAt(regs, at, type, order);
        if (value !== null) out.push({ address: start + at, type, order, value });
      }
    }
  }
  return out;
}

/** Register text for people: decimal and hex (0x002A). */
export const hex16 = (r: number) => `0x${(r & 0xffff).toString(16).toUpperCase().padStart(4, "0")}`;

export interface YamlEntryInput {
  tag: string;
  driver: string;
  area: "holding" | "input";
  address: number;
  unitId?: number;
  type: NumericType;
  order: OrderName;
}

/** The variables.yml entry (one YAML list item) of a reading: defaults (BE/BE) left out, as people write it. */
export function variableYaml(e: YamlEntryInput): string {
  const { byteOrder, wordOrder } = ORDERS[e.order];
  const addr = [`area: ${e.area}`, `address: ${e.address}`];
  if (e.unitId !== undefined) addr.push(`unitId: ${e.unitId}`);
  if (byteOrder !== "BE") addr.push(`byteOrder: ${byteOrder}`);
  if (wordOrder !== "BE") addr.push(`wordOrder: ${wordOrder}`);
  return `  - tag: ${e.tag}\n    driver: ${e.driver}\n    type: ${e.type}\n    address: { ${addr.join(", ")} }\n`;
}
