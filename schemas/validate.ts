// Validation of a value against a schema, with defaults applied and a readable path in the error.
import type { Static, TSchema } from "@sinclair/typebox";
import { Value, ValueErrorType, type ValueError } from "@sinclair/typebox/value";
import { ConfigError } from "./errors.ts";
import { gotValue } from "./redact.ts";

/** JSON pointer "/tags/3/address" -> "tags[3].address" (prefixed by `base`). */
export function readablePath(pointer: string, base = ""): string {
  const parts = pointer
    .split("/")
    .filter(Boolean)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~")) // JSON pointer escapes
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : /^[A-Za-z_$][\w$-]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`));
  return (base + parts.join("")).replace(/^\./, "") || "(root)";
}

/** Applies defaults and validates; throws ConfigError(file, path, message) on the first problem. */
export function parseWithSchema<T extends TSchema>(schema: T, value: unknown, file: string, basePath = ""): Static<T> {
  const v = Value.Default(schema, structuredClone(value ?? {}));
  const first = Value.Errors(schema, v).First();
  if (first) throw new ConfigError(file, readablePath(first.path, basePath), `${expectedMessage(first)}; got ${gotValue(first.path, first.value)}`);
  return v as Static<T>;
}

/** What was expected, in words: a union lists its alternatives instead of TypeBox's "Expected union value". */
export function expectedMessage(error: ValueError): string {
  if (error.type !== ValueErrorType.Union) return error.message;
  const alternatives = error.errors.map((it) => it.First()).filter((e): e is ValueError => e !== undefined);
  const literals = alternatives.filter((e) => e.type === ValueErrorType.Literal).map((e) => JSON.stringify((e.schema as unknown as { const: unknown }).const));
  if (alternatives.length > 0 && literals.length === alternatives.length) return `Expected one of ${literals.join(", ")}`;
  const phrases = alternatives.map((e) => expectedMessage(e).replace(/^Expected /, ""));
  return phrases.length ? `Expected ${[...new Set(phrases)].join(" or ")}` : error.message;
}
