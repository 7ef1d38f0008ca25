// What an operator typed in the write dialog, turned into the value the API takes, and checked before it
// is sent: the tag's type (integers in decimal or hex, 0x1F; 64-bit integers kept exact as decimal text),
// and its write limits. The gateway checks again (schemas/command.ts checkWrite, with the tag's scale);
// this check only saves a round trip and says what is wrong next to the input.
// a relative path (not #schemas/): the unit test runs this file under bun, which refuses a package import outside the package
import { INT_RANGE } from "../../../schemas/command.ts";

export interface WritableTag {
  tag: string;
  type: string;
  min?: number;
  max?: number;
}

export type ParsedWrite = { ok: true; value: number | boolean | string; shown: string } | { ok: false; message: string };

const fail = (message: string): ParsedWrite => ({ ok: false, message });

/** A limit check in engineering units: the same words as the gateway's refusal. */
function limits(t: WritableTag, v: number): ParsedWrite | null {
  if (t.min !== undefined && v < t.min) return fail(`${v} is below the tag's minimum ${t.min}`);
  if (t.max !== undefined && v > t.max) return fail(`${v} is above the tag's maximum ${t.max}`);
  return null;
}

/** An integer typed in decimal or hex (`0x2A`, `-0x10`), exactly; null when it is not one. */
function integerOf(text: string): bigint | null {
  const m = /^([+-]?)(0x[0-9a-f]+|\d+)$/i.exec(text);
  if (!m) return null;
  const n = BigInt(m[2]!);
  return m[1] === "-" ? -n : n;
}

export function parseWrite(t: WritableTag, input: string): ParsedWrite {
  const text = input.trim();
  if (text === "") return fail("type a value");
  if (t.type === "bool") {
    if (/^(true|1|on)$/i.test(text)) return { ok: true, value: true, shown: "true" };
    if (/^(false|0|off)$/i.test(text)) return { ok: true, value: false, shown: "false" };
    return fail("a bool tag takes true or false");
  }
  if (t.type === "string") return { ok: true, value: input, shown: JSON.stringify(input) };
  const range = INT_RANGE[t.type];
  const int = integerOf(text);
  if (range && int !== null && /^[+-]?0x/i.test(text)) {
    // hex is the register's raw pattern: it must fit the type, and it is sent as its decimal value
    if (int < range[0] || int > range[1]) return fail(`${text} does not fit a ${t.type} (${range[0]}..${range[1]})`);
    const big = t.type.endsWith("64");
    return limits(t, Number(int)) ?? { ok: true, value: big ? int.toString() : Number(int), shown: `${int} (${text})` };
  }
  const n = Number(text);
  if (!Number.isFinite(n) || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text)) return fail(`'${text}' is not a number (decimal, or hex such as 0x1F for an integer tag)`);
  if (t.type.endsWith("64") && range) {
    // 64-bit integers travel as decimal text so that no digit is lost on the way (2^53 and beyond)
    if (int === null) return fail(`a ${t.type} tag takes an integer`);
    if (int < range[0] || int > range[1]) return fail(`${text} does not fit a ${t.type}`);
    return limits(t, n) ?? { ok: true, value: int.toString(), shown: int.toString() };
  }
  return limits(t, n) ?? { ok: true, value: n, shown: String(n) };
}
