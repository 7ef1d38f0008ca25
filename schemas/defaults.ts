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

const propertyLists = new WeakMap<TSchema, [string, TSchema][]>();
/** An object schema's properties as a list, made once (Object.entries per value was most of the cost). */
function propertiesOf(schema: TSchema): [string, TSchema][] {
  let p = propertyLists.get(schema);
  if (!p) propertyLists.set(schema, (p = Object.entries(schema.properties as Record<string, TSchema>)));
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
    for (const [key, s] of propertiesOf(schema)) {
      const v = applyDefaults(s, value[key]);
      if (v !== undefined) value[key] = v;
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
