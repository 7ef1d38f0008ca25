// Checks of the tag catalog that a schema cannot express: each tag has one source (a driver, a derived
// expression or a window), its expressions compile, what it names exists, derived tags do not feed
// each other in a circle, and an expression has no write path. Pure: server/config.ts turns each
// problem into a ConfigError with the file, and an edit with any problem is refused whole.
import type { Variable } from "./config.ts";
import { compileExprCached, ExprSyntaxError } from "./expr.ts";

export interface TagProblem {
  /** index in the tags list */
  index: number;
  /** path below tags[index], e.g. "expr" or "derived.expr" ("" for the tag as a whole) */
  field: string;
  message: string;
}

/** The names a mapping expression may use: both are the raw value the driver read. */
export const MAPPING_NAMES: readonly string[] = ["raw", "value"];

/** The sources of a tag read by a driver, the common case: no list built per tag (a 10,000-tag reload checks all). */
const DRIVER_ONLY: readonly string[] = ["driver"];

const exprProblem = (e: unknown): string => (e instanceof ExprSyntaxError ? `expression: ${e.message}` : String(e));

/** Every problem of the mapping and source fields of `tags` (drivers: the configured driver ids). */
export function tagProblems(tags: readonly Variable[], drivers: ReadonlySet<string>): TagProblem[] {
  const problems: TagProblem[] = [];
  const byName = new Map(tags.map((t, i) => [t.tag, i]));
  const inputs = new Map<string, readonly string[]>(); // derived tag -> the tags it reads, for the cycle check
  tags.forEach((t, index) => {
    const add = (field: string, message: string) => problems.push({ index, field, message });
    const sources = t.derived || t.window ? [t.driver !== undefined && "driver", t.derived && "derived", t.window && "window"].filter(Boolean) : t.driver !== undefined ? DRIVER_ONLY : [];
    if (sources.length === 0) add("", `tag '${t.tag}' has no source: give \`driver\` (read from a device), \`derived: {expr}\` or \`window: {fn, tag, seconds}\``);
    if (sources.length > 1) add("", `tag '${t.tag}' has ${sources.join(" and ")}: a tag has exactly one source`);
    if (t.driver !== undefined && !drivers.has(t.driver)) add("driver", `unknown driver '${t.driver}'`);
    if (t.expr !== undefined) checkMappingExpr(t, add);
    if (t.clamp && t.min === undefined && t.max === undefined) add("clamp", "clamp needs min and/or max (the engineering range to hold values to)");
    if (t.derived || t.window) {
      if (t.access !== "R") add("access", `a derived tag is computed by the gateway and cannot be written: access must be R, not ${t.access}`);
      if (t.type === "string") add("type", "a derived tag is a number or a bool, not a string");
    }
    if (t.derived) {
      try {
        const names = compileExprCached(t.derived.expr).names;
        inputs.set(t.tag, names);
        const hinted = new Set<string>();
        for (const n of names) {
          if (n === t.tag) add("derived.expr", `tag '${t.tag}' cannot read itself`);
          else if (!byName.has(n)) {
            const meant = unquotedTag(t.derived.expr, n, tags);
            if (meant === null) add("derived.expr", `unknown tag '${n}' in the expression`);
            else if (!hinted.has(meant)) {
              hinted.add(meant);
              add("derived.expr", `unknown tag '${n}' in the expression: a tag name with characters other than letters, digits, _ and . goes in backticks: \`${meant}\``);
            }
          }
          else if (tags[byName.get(n)!]!.type === "string") add("derived.expr", `tag '${n}' is a string: expressions take numbers and bools`); // has(n) checked
        }
      } catch (e) {
        add("derived.expr", exprProblem(e));
      }
    }
    if (t.window) {
      const w = t.window;
      inputs.set(t.tag, [w.tag]);
      if (w.tag === t.tag) add("window.tag", `tag '${t.tag}' cannot be its own window input`);
      else if (!byName.has(w.tag)) add("window.tag", `unknown tag '${w.tag}'`);
      if (w.counterMax !== undefined && w.fn !== "rate") add("window.counterMax", `counterMax applies to fn: rate, not ${w.fn}`);
    }
  });
  for (const cycle of findCycles(inputs)) problems.push({ index: byName.get(cycle[0]!)!, field: "", message: `derived tags read each other in a circle: ${cycle.join(" -> ")}` });
  return problems;
}

function checkMappingExpr(t: Variable, add: (field: string, message: string) => void): void {
  try {
    compileExprCached(t.expr!, MAPPING_NAMES); // the caller checked expr is set
  } catch (e) {
    add("expr", exprProblem(e));
  }
  if (t.scale !== 1 || t.offset !== 0) add("expr", "give expr or scale/offset, not both (expr: `raw * scale + offset`)");
  // no inverse of an arbitrary expression: a write would put an unknown raw value into the PLC
  if (t.access !== "R") add("expr", `expr has no inverse for writes: make the tag read-only (access: R) or use scale/offset (access is ${t.access})`);
  if (t.type === "string") add("expr", "expr maps numbers and bools, not strings");
  if (t.derived || t.window) add("expr", "a derived tag has no raw value: put the expression in derived.expr");
}

/** Each circle among derived tags once, starting at its first tag. */
function findCycles(inputs: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];
  const visit = (tag: string): void => {
    if (state.get(tag) === "done") return;
    if (state.get(tag) === "visiting") {
      cycles.push([...path.slice(path.indexOf(tag)), tag]);
      return;
    }
    state.set(tag, "visiting");
    path.push(tag);
    for (const n of inputs.get(tag) ?? []) if (inputs.has(n)) visit(n);
    path.pop();
    state.set(tag, "done");
  };
  for (const tag of inputs.keys()) visit(tag);
  return cycles;
}

/**
 * The catalog tag the expression names without backticks, whose pieces the parser read as `name`
 * (`t/boiler - t/temp` reads as t / boiler - t / temp), or null.
 */
function unquotedTag(expr: string, name: string, tags: readonly Variable[]): string | null {
  for (const o of tags) if (o.tag !== name && /[^A-Za-z0-9_.]/.test(o.tag) && o.tag.includes(name) && expr.includes(o.tag)) return o.tag;
  return null;
}
