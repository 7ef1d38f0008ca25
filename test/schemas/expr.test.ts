// The expression language (schemas/expr.ts): what it computes, what it refuses and where, and that no
// expression can reach JavaScript's objects, prototypes or globals.
import { describe, expect, it } from "bun:test";
import { compileExpr, ExprEvalError, ExprSyntaxError } from "../../schemas/expr.ts";

const RAW = ["raw", "value"];
const evalRaw = (src: string, raw: number | boolean) => compileExpr(src, { names: RAW }).evaluate([raw, raw]);
const syntaxError = (src: string, names: readonly string[] | undefined = RAW): ExprSyntaxError => {
  try {
    compileExpr(src, names ? { names } : {});
  } catch (e) {
    if (e instanceof ExprSyntaxError) return e;
    throw e;
  }
  throw new Error(`'${src}' compiled`);
};

describe("expressions compute", () => {
  it("scales a raw value with the usual precedence", () => {
    expect(evalRaw("raw * 0.1 - 40", 650)).toBeCloseTo(25);
    expect(evalRaw("(raw - 4000) / 16000 * 100", 12000)).toBe(50);
    expect(evalRaw("value % 7 + 2 * 3", 10)).toBe(9);
  });

  it("gives ** right associativity and binds it tighter than a prefix minus", () => {
    expect(evalRaw("2 ** 3 ** 2", 0)).toBe(512);
    expect(evalRaw("-2 ** 2", 0)).toBe(-4);
    expect(evalRaw("2 ** -1", 0)).toBe(0.5);
  });

  it("evaluates comparisons, logic and nested conditionals to booleans and branches", () => {
    expect(evalRaw("raw > 5 && raw <= 10", 7)).toBe(true);
    expect(evalRaw("!(raw == 7) || false", 7)).toBe(false);
    expect(evalRaw("raw < 0 ? -1 : raw == 0 ? 0 : 1", 0)).toBe(0);
    expect(evalRaw("raw < 0 ? -1 : raw == 0 ? 0 : 1", 3)).toBe(1);
    expect(evalRaw("!raw", true)).toBe(false);
  });

  it("calls the whitelisted functions, if() lazily", () => {
    expect(evalRaw("clamp(raw, 0, 100)", 140)).toBe(100);
    expect(evalRaw("round(raw / 3, 2)", 10)).toBe(3.33);
    expect(evalRaw("max(abs(raw), 2, sqrt(16))", -9)).toBe(9);
    expect(evalRaw("if(raw > 0, log(raw), 0)", 0)).toBe(0);
    expect(evalRaw("pow(raw, 2) + floor(1.7) + ceil(0.2)", 3)).toBe(11);
  });

  it("takes tag names with dots and quoted names as variables in order of appearance", () => {
    const c = compileExpr("Boiler.T - `Line-1/Temp` + Boiler.T");
    expect(c.names).toEqual(["Boiler.T", "Line-1/Temp"]);
    expect(c.evaluate([10, 4])).toBe(16);
  });

  it("costs well under a microsecond a call once compiled", () => {
    const c = compileExpr("raw * 0.1 - 40", { names: RAW });
    const v = [0, 0];
    const n = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      v[0] = i;
      c.evaluate(v);
    }
    const nsPerCall = ((performance.now() - t0) * 1e6) / n;
    expect(nsPerCall).toBeLessThan(1000);
  });
});

describe("expressions that cannot compute fail with the place", () => {
  it("refuses a division by zero at the operator's column instead of giving Infinity", () => {
    const c = compileExpr("100 / raw", { names: RAW });
    expect(() => c.evaluate([0, 0])).toThrow(ExprEvalError);
    expect(() => c.evaluate([0, 0])).toThrow("column 5: division by zero");
  });

  it("refuses a NaN or infinite result (sqrt of a negative, log of zero, overflow)", () => {
    for (const src of ["sqrt(raw)", "log(raw + 1)", "10 ** (raw * -1000)"]) expect(() => evalRaw(src, -1)).toThrow(ExprEvalError);
  });

  it("names the column and the problem of a syntax error", () => {
    expect(syntaxError("raw * ").message).toBe("column 7: expression ends where a value was expected");
    expect(syntaxError("(raw + 1").message).toContain("column 9: expected ')' to close the '(' at column 1");
    expect(syntaxError("raw 2").message).toBe("column 5: unexpected '2' after a complete expression");
    expect(syntaxError("rwa * 2").message).toBe("column 1: unknown name 'rwa' (known: raw, value)");
    expect(syntaxError("sqr(raw)").message).toContain("column 1: unknown function 'sqr'");
    expect(syntaxError("clamp(raw, 1)").message).toBe("column 1: clamp() takes 3 arguments, got 2");
    expect(syntaxError("12abc").message).toBe("column 1: malformed number '12a'");
    expect(syntaxError("").message).toBe("column 1: empty expression");
  });
});

describe("expressions cannot reach JavaScript", () => {
  it("has no member access: dots make a name, brackets are not in the language", () => {
    expect(syntaxError("raw.constructor").message).toBe("column 1: unknown name 'raw.constructor' (known: raw, value)");
    expect(syntaxError("raw['constructor']").detail).toBe("unexpected character '['");
    expect(syntaxError("raw[0]").detail).toBe("unexpected character '['");
  });

  it("refuses constructor, __proto__ and prototype as names and as functions", () => {
    for (const name of ["constructor", "__proto__", "prototype", "toString", "valueOf", "hasOwnProperty"]) {
      expect(syntaxError(name).detail).toStartWith(`unknown name '${name}'`);
      expect(syntaxError(`${name}(1)`).detail).toStartWith(`unknown function '${name}'`);
    }
  });

  it("refuses globals: globalThis, process, Bun, eval, Function, require, Math are not names", () => {
    for (const name of ["globalThis", "process", "Bun", "eval", "Function", "require", "Math", "this", "window"]) {
      expect(syntaxError(name).detail).toStartWith(`unknown name '${name}'`);
      expect(syntaxError(`${name}(1)`).detail).toStartWith(`unknown function '${name}'`);
    }
    expect(syntaxError("Math.max(1, 2)").detail).toStartWith("unknown function 'Math.max'");
  });

  it("has no strings, assignments, arrows, templates or statements", () => {
    expect(syntaxError('"alert(1)"').detail).toBe("strings are not part of the language");
    expect(syntaxError("'x'").detail).toBe("strings are not part of the language");
    for (const src of ["raw = 1", "raw => 1", "${raw}", "raw; 1", "{}", "new Date()", "raw++"]) expect(() => compileExpr(src, { names: RAW })).toThrow(ExprSyntaxError);
  });

  it("binds a derived tag named like a prototype key to its own slot, never to Object.prototype", () => {
    const c = compileExpr("__proto__ + constructor * 2");
    expect(c.names).toEqual(["__proto__", "constructor"]);
    expect(c.evaluate([1, 2])).toBe(5);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("leaves Object.prototype untouched by every attempt to pollute it", () => {
    const attempts = ["__proto__.polluted = 1", "constructor.prototype.polluted", "toString.constructor('return process')()", "raw.__proto__.polluted"];
    for (const src of attempts) {
      try {
        compileExpr(src).evaluate([1, 1, 1]);
      } catch {
        // refused is fine; what matters is what follows
      }
    }
    expect(Object.prototype).not.toHaveProperty("polluted");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("limits length and nesting, so a hostile catalog cannot exhaust the stack", () => {
    expect(syntaxError("raw+".repeat(300) + "raw").detail).toBe("expression longer than 1000 characters");
    expect(syntaxError("(".repeat(100) + "raw" + ")".repeat(100)).detail).toBe("expression nested deeper than 64");
    expect(syntaxError("-".repeat(100) + "raw").detail).toBe("expression nested deeper than 64");
    expect(compileExpr("(".repeat(30) + "raw" + ")".repeat(30), { names: RAW }).evaluate([3, 3])).toBe(3);
  });
});
