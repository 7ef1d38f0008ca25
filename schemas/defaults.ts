// Schema defaults applied fast: TypeBox's Value.Default walks every value generically (about 50 µs a tag on
// this machine, half a second for a 10,000-tag catalog at each hot reload). This walks objects and arrays
// directly, tries a union's variants with a compiled check, and hands what it does not handle (records
// with defaults inside) to Value.Default. Same result as Value.Default (test/schemas/defaults.test.ts).
import { Kind, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";

const checkers = new WeakMap<TSchema, TypeCheck<TSchema>>();
function check(schema: TSchema, value: unknown): boolean {
  let c = checkers.get(schema);
  if (!c) checkers.set(schema, (c = TypeCompiler.Compile(schema)));
  return c.Check(value);
}

const nested = new WeakMap<TSchema, boolean>();
/** Whether a default is set anywhere inside `schema` (below its own level). */
function hasInnerDefaults(schema: TSchema): boolean {
  let r = nested.get(schema);
  if (r === undefined) {
    const kids: TSchema[] = [
      ...Object.values((schema.properties ?? {}) as Record<string, TSchema>),
      ...(schema.items && typeof schema.items === "object" ? [schema.items as TSchema] : []),
      ...((schema.anyOf ?? []) as TSchema[]),
      ...Object.values((schema.patternProperties ?? {}) as Record<string, TSchema>),
      ...(typeof schema.additionalProperties === "object" ? [schema.additionalProperties as TSchema] : []),
    ];
    r = kids.some((k) => k.default !== undefined || hasInnerDefaults(k));
    nested.set(schema, r);
  }
  return r;
}

/** One property of an object schema, as applyDefaults needs it. */
interface PropertyPlan {
  key: string;
  schema: TSchema;
  /** the property has a default of its own (filled when the value lacks it) */
  hasDefault: boolean;
  /** a present value has defaults to fill inside */
  hasInner: boolean;
}

const propertyPlans = new WeakMap<TSchema, PropertyPlan[]>();
/**
 * An object schema's properties that can take a default, made once: a 10,000-tag catalog walked every
 * property of every tag through the generic path (a WeakMap lookup each), 30-40 ms of a hot reload; now
 * a property without any default is not visited.
 */
function plansOf(schema: TSchema): PropertyPlan[] {
  let p = propertyPlans.get(schema);
  if (!p) {
    p = Object.entries(schema.properties as Record<string, TSchema>)
      .map(([key, s]) => ({ key, schema: s, hasDefault: s.default !== undefined, hasInner: hasInnerDefaults(s) }))
      .filter((it) => it.hasDefault || it.hasInner);
    propertyPlans.set(schema, p);
  }
  return p;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
/** A copy of parsed YAML/JSON data (plain objects, arrays, scalars): much cheaper than structuredClone. */
function clone<T>(v: T): T {
  if (Array.isArray(v)) return v.map(clone) as T;
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k in v) out[k] = clone(v[k]);
    return out as T;
  }
  return v;
}

/** Fills the schema's defaults into `value` (mutated and returned), like Value.Default(schema, value). */
export function applyDefaults(schema: TSchema, value: unknown): unknown {
  if (value === undefined) return schema.default !== undefined ? applyDefaults(schema, clone(schema.default)) : undefined;
  if (!hasInnerDefaults(schema)) return value;
  const kind = schema[Kind];
  if (kind === "Object" && isPlainObject(value) && schema.additionalProperties !== true && typeof schema.additionalProperties !== "object") {
    for (const { key, schema: s, hasDefault, hasInner } of plansOf(schema)) {
      const v = value[key];
      // as the generic call did: a missing value takes its default (itself defaulted), a present one is
      // visited only when it has defaults inside
      if (v === undefined) {
        if (hasDefault) value[key] = applyDefaults(s, clone(s.default));
      } else if (hasInner) value[key] = applyDefaults(s, v);
    }
    return value;
  }
  if (kind === "Array" && Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = applyDefaults(schema.items as TSchema, value[i]);
    return value;
  }
  if (kind === "Union") {
    // as TypeBox does: the first variant that, defaulted, checks (with a compiled check, not Value.Check)
    for (const variant of schema.anyOf as TSchema[]) {
      const candidate = applyDefaults(variant, clone(value));
      if (check(variant, candidate)) return candidate;
    }
    return value;
  }
  return Value.Default(schema, value);
}
