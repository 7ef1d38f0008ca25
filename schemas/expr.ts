// The gateway's expression language: a tokenizer and a Pratt parser that compile a user's expression
// once into a tree of closures. Used by the mapping layer (`expr: raw * 0.1 - 40`) and by derived tags
// (`expr: Boiler.T - Boiler.Tret`). Safety comes from the grammar, not from a sandbox: there is no
// member access, no string literal, no call of anything but the whitelisted functions below (looked up
// in a Map, never on an object), and names resolve at compile time to slots of the value array a
// caller passes, so `constructor`, `__proto__` or `globalThis` are just unknown names (or, for a
// derived tag, the name of a tag). Values are numbers and booleans; a result that is not a finite
// number (division by zero, sqrt(-1), log(0)) is an ExprEvalError, never a silent NaN or Infinity.

export type Scalar = number | boolean;

/** A compile error: what is wrong and where (1-based column in the source). */
export class ExprSyntaxError extends Error {
  override name = "ExprSyntaxError";
  constructor(
    readonly detail: string,
    readonly column: number,
  ) {
    super(`column ${column}: ${detail}`);
  }
}

/** An evaluation error (division by zero, a non-finite result, a bad argument): the tag gets no value. */
export class ExprEvalError extends Error {
  override name = "ExprEvalError";
  constructor(
    readonly detail: string,
    readonly column: number,
  ) {
    super(`column ${column}: ${detail}`);
  }
}

export interface CompileOptions {
  /**
   * The names the expression may use, in slot order (evaluate's values[i] is names[i]). When absent,
   * every name is accepted and gets a slot in order of first appearance (derived tags: the caller checks
   * them against the catalog).
   */
  names?: readonly string[];
  /** longest source accepted, in characters (default 1000) */
  maxLength?: number;
  /** deepest nesting of operators, calls and parentheses (default 64) */
  maxDepth?: number;
}

export interface CompiledExpr {
  readonly source: string;
  /** the names in slot order: the fixed list given, or those found in the source */
  readonly names: readonly string[];
  /** Evaluates over values[slot]; throws ExprEvalError when the result is not a finite number or a boolean. */
  evaluate(values: ArrayLike<Scalar>): Scalar;
}

type Fn = (v: ArrayLike<Scalar>) => Scalar;

// ---- tokens ----------------------------------------------------------------------------------------
type TokenKind = "num" | "name" | "op" | "end";
interface Token {
  kind: TokenKind;
  text: string;
  col: number;
  num?: number;
}

// longest first: "**" before "*", "<=" before "<"
const OPERATORS = ["**", "==", "!=", "<=", ">=", "&&", "||", "+", "-", "*", "/", "%", "<", ">", "!", "?", ":", "(", ")", ","];
const NAME_START = /[A-Za-z_]/;
const NAME_PART = /[A-Za-z0-9_]/;
const NUMBER = /^(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const col = i + 1;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
    } else if ((c >= "0" && c <= "9") || (c === "." && /\d/.test(src[i + 1] ?? ""))) {
      const m = NUMBER.exec(src.slice(i))!; // a digit (or .digit) always matches
      if (NAME_START.test(src[i + m[0].length] ?? "")) throw new ExprSyntaxError(`malformed number '${src.slice(i, i + m[0].length + 1)}'`, col);
      out.push({ kind: "num", text: m[0], col, num: Number(m[0]) });
      i += m[0].length;
    } else if (NAME_START.test(c)) {
      // dots belong to names (Boiler.T): a tag name, never a member access
      let j = i + 1;
      while (j < src.length && (NAME_PART.test(src[j]!) || (src[j] === "." && NAME_START.test(src[j + 1] ?? "")))) j++;
      out.push({ kind: "name", text: src.slice(i, j), col });
      i = j;
    } else if (c === "`") {
      // a tag name with characters an identifier cannot hold: `Line-1/Temp`
      const j = src.indexOf("`", i + 1);
      if (j < 0) throw new ExprSyntaxError("unterminated `quoted name`", col);
      const name = src.slice(i + 1, j);
      if (!/^[A-Za-z0-9_.:/-]{1,200}$/.test(name)) throw new ExprSyntaxError(`'${name}' is not a tag name`, col);
      out.push({ kind: "name", text: name, col });
      i = j + 1;
    } else {
      const op = OPERATORS.find((o) => src.startsWith(o, i));
      if (!op) throw new ExprSyntaxError(c === '"' || c === "'" ? "strings are not part of the language" : `unexpected character '${c}'`, col);
      out.push({ kind: "op", text: op, col });
      i += op.length;
    }
  }
  out.push({ kind: "end", text: "end of expression", col: src.length + 1 });
  return out;
}

// ---- functions -------------------------------------------------------------------------------------
interface FnSpec {
  min: number;
  max: number;
  make(args: Fn[], col: number): Fn;
}
const num = (x: Scalar): number => +x;
const unary = (f: (x: number) => number): FnSpec => ({ min: 1, max: 1, make: ([a]) => (v) => f(+a!(v)) });
const binary = (f: (x: number, y: number) => number): FnSpec => ({ min: 2, max: 2, make: ([a, b]) => (v) => f(+a!(v), +b!(v)) });
const variadic = (f: (...xs: number[]) => number): FnSpec => ({
  min: 1,
  max: 32,
  make: (args) => (args.length === 2 ? (v) => f(+args[0]!(v), +args[1]!(v)) : (v) => f(...args.map((a) => num(a(v))))),
});

/** The whitelist: nothing else can be called. A Map, so `constructor(...)` finds nothing. */
const FUNCTIONS = new Map<string, FnSpec>([
  ["abs", unary(Math.abs)],
  ["floor", unary(Math.floor)],
  ["ceil", unary(Math.ceil)],
  ["trunc", unary(Math.trunc)],
  ["sign", unary(Math.sign)],
  ["sqrt", unary(Math.sqrt)],
  ["exp", unary(Math.exp)],
  ["log", unary(Math.log)],
  ["log10", unary(Math.log10)],
  ["log2", unary(Math.log2)],
  ["sin", unary(Math.sin)],
  ["cos", unary(Math.cos)],
  ["tan", unary(Math.tan)],
  ["pow", binary(Math.pow)],
  ["atan2", binary(Math.atan2)],
  ["hypot", variadic(Math.hypot)],
  ["min", variadic(Math.min)],
  ["max", variadic(Math.max)],
  [
    "round",
    {
      min: 1,
      max: 2,
      // round(x) to an integer, round(x, n) to n decimals (0..15)
      make: ([a, d], col) => {
        if (!d) return (v) => Math.round(+a!(v));
        return (v) => {
          const n = +d(v);
          if (!Number.isInteger(n) || n < 0 || n > 15) throw new ExprEvalError(`round: decimals must be an integer 0..15, got ${n}`, col);
          const f = 10 ** n;
          return Math.round(+a!(v) * f) / f;
        };
      },
    },
  ],
  [
    "clamp",
    {
      min: 3,
      max: 3,
      make: ([x, lo, hi]) => (v) => Math.min(Math.max(+x!(v), +lo!(v)), +hi!(v)),
    },
  ],
  [
    "if",
    {
      min: 3,
      max: 3,
      // lazy: only the branch taken is evaluated (if(x > 0, log(x), 0) never takes log(0))
      make: ([c, a, b]) => (v) => (c!(v) ? a!(v) : b!(v)),
    },
  ],
]);
const CONSTANTS = new Map<string, Scalar>([
  ["true", true],
  ["false", false],
  ["PI", Math.PI],
  ["E", Math.E],
]);

/** The names of the whitelisted functions (for documentation and error messages). */
export const EXPR_FUNCTIONS: readonly string[] = [...FUNCTIONS.keys()];

// ---- parser ----------------------------------------------------------------------------------------
// Binding powers [left, right] (higher binds tighter). Left-associative operators recurse with right =
// left; right-associative ones (** and ?:) with right = left - 1, so the same operator binds again on
// the right: 2 ** 3 ** 2 = 2 ** 9, a ? b : c ? d : e = a ? b : (c ? d : e). ** binds tighter than a
// prefix minus: -2 ** 2 = -(2 ** 2).
const INFIX_BP = new Map<string, readonly [number, number]>([
  ["?", [10, 9]],
  ["||", [20, 20]],
  ["&&", [30, 30]],
  ["==", [40, 40]],
  ["!=", [40, 40]],
  ["<", [50, 50]],
  ["<=", [50, 50]],
  [">", [50, 50]],
  [">=", [50, 50]],
  ["+", [60, 60]],
  ["-", [60, 60]],
  ["*", [70, 70]],
  ["/", [70, 70]],
  ["%", [70, 70]],
  ["**", [90, 89]],
]);
const PREFIX_BP = 80;

class Parser {
  private pos = 0;
  private depth = 0;
  /** slot of each name (the fixed list, or first appearance) */
  readonly slots = new Map<string, number>();

  constructor(
    private readonly tokens: Token[],
    private readonly fixed: boolean,
    private readonly maxDepth: number,
  ) {}

  parse(): Fn {
    const fn = this.expr(0);
    const t = this.peek();
    if (t.kind !== "end") throw new ExprSyntaxError(`unexpected '${t.text}' after a complete expression`, t.col);
    return fn;
  }

  private peek(): Token {
    return this.tokens[this.pos]!; // the list always ends with an 'end' token, never passed
  }

  private next(): Token {
    const t = this.tokens[this.pos]!;
    if (t.kind !== "end") this.pos++;
    return t;
  }

  private expect(op: string, what: string): void {
    const t = this.next();
    if (t.kind !== "op" || t.text !== op) throw new ExprSyntaxError(`expected '${op}' ${what}, found '${t.text}'`, t.col);
  }

  private expr(minBp: number): Fn {
    if (++this.depth > this.maxDepth) throw new ExprSyntaxError(`expression nested deeper than ${this.maxDepth}`, this.peek().col);
    let left = this.prefix();
    for (;;) {
      const t = this.peek();
      const bp = t.kind === "op" ? INFIX_BP.get(t.text) : undefined;
      if (!bp || bp[0] <= minBp) break;
      this.next();
      if (t.text === "?") {
        const yes = this.expr(0);
        this.expect(":", "in a ? b : c");
        const no = this.expr(bp[1]);
        const cond = left;
        left = (v) => (cond(v) ? yes(v) : no(v));
      } else {
        left = binaryOp(t.text, left, this.expr(bp[1]), t.col);
      }
    }
    this.depth--;
    return left;
  }

  private prefix(): Fn {
    const t = this.next();
    if (t.kind === "num") {
      const n = t.num!; // set for every num token
      return () => n;
    }
    if (t.kind === "name") return this.nameOrCall(t);
    if (t.kind === "op") {
      if (t.text === "(") {
        const inner = this.expr(0);
        this.expect(")", `to close the '(' at column ${t.col}`);
        return inner;
      }
      if (t.text === "-" || t.text === "+" || t.text === "!") {
        const operand = this.expr(PREFIX_BP);
        if (t.text === "-") return (v) => -operand(v);
        if (t.text === "+") return (v) => +operand(v);
        return (v) => !operand(v);
      }
    }
    throw new ExprSyntaxError(t.kind === "end" ? "expression ends where a value was expected" : `unexpected '${t.text}' where a value was expected`, t.col);
  }

  private nameOrCall(t: Token): Fn {
    const after = this.peek();
    if (after.kind === "op" && after.text === "(") {
      const spec = FUNCTIONS.get(t.text);
      if (!spec) throw new ExprSyntaxError(`unknown function '${t.text}' (known: ${EXPR_FUNCTIONS.join(", ")})`, t.col);
      this.next();
      const args: Fn[] = [];
      if (!(this.peek().kind === "op" && this.peek().text === ")")) {
        do args.push(this.expr(0));
        while (this.peek().kind === "op" && this.peek().text === "," && this.next());
      }
      this.expect(")", `to close the call of ${t.text}() at column ${t.col}`);
      if (args.length < spec.min || args.length > spec.max) {
        const want = spec.min === spec.max ? `${spec.min}` : spec.max >= 32 ? `at least ${spec.min}` : `${spec.min} or ${spec.max}`;
        throw new ExprSyntaxError(`${t.text}() takes ${want} argument${want === "1" ? "" : "s"}, got ${args.length}`, t.col);
      }
      return spec.make(args, t.col);
    }
    const k = CONSTANTS.get(t.text);
    if (k !== undefined && !this.slots.has(t.text)) return () => k;
    let slot = this.slots.get(t.text);
    if (slot === undefined) {
      if (this.fixed) throw new ExprSyntaxError(`unknown name '${t.text}' (known: ${[...this.slots.keys()].join(", ") || "none"})`, t.col);
      slot = this.slots.size;
      this.slots.set(t.text, slot);
    }
    const s = slot;
    return (v) => v[s]!;
  }
}

function binaryOp(op: string, a: Fn, b: Fn, col: number): Fn {
  switch (op) {
    case "+":
      return (v) => +a(v) + +b(v);
    case "-":
      return (v) => +a(v) - +b(v);
    case "*":
      return (v) => +a(v) * +b(v);
    case "/":
      return (v) => {
        const d = +b(v);
        if (d === 0) throw new ExprEvalError("division by zero", col);
        return +a(v) / d;
      };
    case "%":
      return (v) => {
        const d = +b(v);
        if (d === 0) throw new ExprEvalError("remainder of a division by zero", col);
        return +a(v) % d;
      };
    case "**":
      return (v) => (+a(v)) ** +b(v);
    case "==":
      return (v) => +a(v) === +b(v);
    case "!=":
      return (v) => +a(v) !== +b(v);
    case "<":
      return (v) => +a(v) < +b(v);
    case "<=":
      return (v) => +a(v) <= +b(v);
    case ">":
      return (v) => +a(v) > +b(v);
    case ">=":
      return (v) => +a(v) >= +b(v);
    case "&&":
      return (v) => !!a(v) && !!b(v);
    default: // "||": the only operator left in INFIX_BP
      return (v) => !!a(v) || !!b(v);
  }
}

/** Compiles `source` once; throws ExprSyntaxError naming the column and what is wrong. */
export function compileExpr(source: string, opts: CompileOptions = {}): CompiledExpr {
  const maxLength = opts.maxLength ?? 1000;
  if (typeof source !== "string") throw new ExprSyntaxError("an expression must be a string", 1);
  if (source.length > maxLength) throw new ExprSyntaxError(`expression longer than ${maxLength} characters`, maxLength + 1);
  if (source.trim() === "") throw new ExprSyntaxError("empty expression", 1);
  const parser = new Parser(tokenize(source), opts.names !== undefined, opts.maxDepth ?? 64);
  opts.names?.forEach((n, i) => parser.slots.set(n, i));
  const fn = parser.parse();
  const names = [...parser.slots.keys()];
  return {
    source,
    names,
    evaluate(values) {
      const r = fn(values);
      if (typeof r === "number" && !Number.isFinite(r)) throw new ExprEvalError(`result is ${r} (not a finite number)`, 1);
      return r;
    },
  };
}

// Compiled expressions are immutable (evaluate only reads its values array), so equal sources share
// one: a catalog of 10,000 tags holds a few dozen distinct scalings, and a reload recompiles none.
// Keyed by the names, then the source: a key string joined per call was about 1 µs, 10 ms of every
// 10,000-tag reload; a names list is joined once (callers pass one constant list, e.g. MAPPING_NAMES).
const compiled = new Map<string, Map<string, CompiledExpr | ExprSyntaxError>>();
const namesKeys = new WeakMap<readonly string[], string>();
const CACHE_LIMIT = 50_000;
let cachedCount = 0;

function namesKey(names: readonly string[] | undefined): string {
  if (!names) return "*";
  let k = namesKeys.get(names);
  if (k === undefined) namesKeys.set(names, (k = names.join(",")));
  return k;
}

/** compileExpr with a cache by source and names (options other than names take their defaults). */
export function compileExprCached(source: string, names?: readonly string[]): CompiledExpr {
  const key = namesKey(names);
  let bySource = compiled.get(key);
  if (bySource === undefined) compiled.set(key, (bySource = new Map()));
  let c = bySource.get(source);
  if (c === undefined) {
    try {
      c = compileExpr(source, names ? { names } : {});
    } catch (e) {
      if (!(e instanceof ExprSyntaxError)) throw e;
      c = e;
    }
    if (cachedCount >= CACHE_LIMIT) {
      for (const m of compiled.values()) m.clear();
      cachedCount = 0;
    }
    bySource.set(source, c);
    cachedCount++;
  }
  if (c instanceof ExprSyntaxError) throw c;
  return c;
}
