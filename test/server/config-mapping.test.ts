// Mistakes in the mapping and derived-tag fields of variables.yml are refused with the file, the path and
// what is wrong (schemas/tag-checks.ts through server/config.ts), and a good catalog with them loads.
import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { readConfig } from "../../server/config.ts";
import { tempDir, writeConfig } from "../helpers/index.ts";

const dirs: ReturnType<typeof tempDir>[] = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

const base = {
  "endpoints.yml": "endpoints: {}\n",
  "drivers.yml": "drivers:\n  - { id: sim, type: simulator }\n",
};
function problemsOf(tagLines: string): { path: string; message: string }[] {
  const d = tempDir();
  dirs.push(d);
  writeConfig(d.path, { ...base, "variables.yml": `tags:\n${tagLines}` });
  return readConfig(d.path).problems.map((p) => {
    expect(p.file).toBe(join(d.path, "variables.yml"));
    return { path: p.path, message: p.detail };
  });
}

describe("variables.yml mapping and derived fields", () => {
  it("loads a catalog with expressions, report by exception, derived tags and windows", () => {
    const problems = problemsOf(
      [
        `  - { tag: Boiler.T, driver: sim, type: float64, expr: "raw * 0.1 - 40", deadband: 0.2, maxIntervalMs: 10000 }`,
        `  - { tag: Boiler.Tret, driver: sim, type: float64, clamp: true, min: 0, max: 120, deadbandPercent: 0.5 }`,
        `  - { tag: Boiler.dT, type: float64, derived: { expr: "Boiler.T - Boiler.Tret" } }`,
        `  - { tag: Boiler.dT.avg, type: float64, window: { fn: avg, tag: Boiler.dT, seconds: 60 } }`,
        `  - { tag: Meter.count, driver: sim, type: uint16 }`,
        `  - { tag: Meter.rate, type: float64, window: { fn: rate, tag: Meter.count, seconds: 10, counterMax: 65535 } }`,
      ].join("\n"),
    );
    expect(problems).toEqual([]);
  });

  it("says what is missing when a tag names neither a driver nor a derived source", () => {
    expect(problemsOf(`  - { tag: a, type: float64 }`)).toEqual([
      { path: "tags[0]", message: "tag 'a' has no source: give `driver` (read from a device), `derived: {expr}` or `window: {fn, tag, seconds}`" },
    ]);
  });

  it("refuses a tag with two sources", () => {
    expect(problemsOf(`  - { tag: a, driver: sim, type: float64, derived: { expr: "1" } }`)).toContainEqual({ path: "tags[0]", message: "tag 'a' has driver and derived: a tag has exactly one source" });
  });

  it("refuses an expression that does not compile, naming its column", () => {
    expect(problemsOf(`  - { tag: a, driver: sim, type: float64, expr: "raw * (0.1 - 40" }`)).toEqual([
      { path: "tags[0].expr", message: "expression: column 16: expected ')' to close the '(' at column 7, found 'end of expression'" },
    ]);
    expect(problemsOf(`  - { tag: a, driver: sim, type: float64, expr: "constructor(raw)" }`)[0]!.message).toStartWith("expression: column 1: unknown function 'constructor'");
  });

  it("refuses an expression on a writable tag (no inverse for the write) and beside scale/offset", () => {
    expect(problemsOf(`  - { tag: a, driver: sim, type: float64, access: RW, expr: "raw * 2" }`)).toEqual([
      { path: "tags[0].expr", message: "expr has no inverse for writes: make the tag read-only (access: R) or use scale/offset (access is RW)" },
    ]);
    expect(problemsOf(`  - { tag: a, driver: sim, type: float64, scale: 2, expr: "raw * 2" }`)[0]!.message).toBe("give expr or scale/offset, not both (expr: `raw * scale + offset`)");
  });

  it("refuses clamp without a range", () => {
    expect(problemsOf(`  - { tag: a, driver: sim, type: float64, clamp: true }`)).toEqual([{ path: "tags[0].clamp", message: "clamp needs min and/or max (the engineering range to hold values to)" }]);
  });

  it("points a derived expression that names slashed tags without backticks to the backticks, once per tag", () => {
    const lines = `  - { tag: t/boiler, driver: sim, type: float64 }\n  - { tag: t/ret, driver: sim, type: float64 }\n  - { tag: dT, type: float64, derived: { expr: "t/boiler - t/ret" } }`;
    const hint = "a tag name with characters other than letters, digits, _ and . goes in backticks";
    expect(problemsOf(lines)).toEqual([
      { path: "tags[2].derived.expr", message: `unknown tag 't' in the expression: ${hint}: \`t/boiler\`` },
      { path: "tags[2].derived.expr", message: `unknown tag 'ret' in the expression: ${hint}: \`t/ret\`` },
    ]);
  });

  it("refuses a derived tag over an unknown tag, a writable one, and derived tags that read each other in a circle", () => {
    expect(problemsOf(`  - { tag: a, type: float64, derived: { expr: "b + 1" } }`)).toEqual([{ path: "tags[0].derived.expr", message: "unknown tag 'b' in the expression" }]);
    expect(problemsOf(`  - { tag: x, driver: sim, type: float64 }\n  - { tag: a, type: float64, access: RW, derived: { expr: "x" } }`)).toEqual([
      { path: "tags[1].access", message: "a derived tag is computed by the gateway and cannot be written: access must be R, not RW" },
    ]);
    expect(problemsOf(`  - { tag: a, type: float64, derived: { expr: "b + 1" } }\n  - { tag: b, type: float64, window: { fn: avg, tag: a, seconds: 5 } }`)).toEqual([
      { path: "tags[0]", message: "derived tags read each other in a circle: a -> b -> a" },
    ]);
  });

  it("refuses a window over an unknown tag and counterMax on a window that is not a rate", () => {
    expect(problemsOf(`  - { tag: a, type: float64, window: { fn: max, tag: nope, seconds: 5, counterMax: 10 } }`)).toEqual([
      { path: "tags[0].window.tag", message: "unknown tag 'nope'" },
      { path: "tags[0].window.counterMax", message: "counterMax applies to fn: rate, not max" },
    ]);
  });
});
