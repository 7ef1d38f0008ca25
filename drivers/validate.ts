// Validation of a driver's own config against its TypeBox schema, with a path in the message.
import type { TSchema, Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { gotValue } from "../schemas/redact.ts";
import { expectedMessage, readablePath } from "../schemas/validate.ts";
import { DriverConfigError } from "./errors.ts";

export function parseDriverConfig<T extends TSchema>(driverId: string, schema: T, config: unknown): Static<T> {
  const withDefaults = Value.Default(schema, structuredClone(config ?? {}));
  if (Value.Check(schema, withDefaults)) return withDefaults as Static<T>;
  // every path at fault, once each: a user fixes them in one edit, not one per check
  const byPath = new Map<string, string>();
  for (const e of Value.Errors(schema, withDefaults)) {
    const path = readablePath(e.path, "config");
    if (!byPath.has(path)) byPath.set(path, `${expectedMessage(e)} (got ${gotValue(e.path, e.value, 200)})`);
  }
  const [first, ...rest] = [...byPath];
  throw new DriverConfigError(driverId, first![0], first![1], rest.map(([path, message]) => ({ path, message })));
}
