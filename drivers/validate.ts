// Validation of a driver's own config against its TypeBox schema, with a path in the message.
import type { TSchema, Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { gotValue } from "../schemas/redact.ts";
import { readablePath } from "../schemas/validate.ts";
import { DriverConfigError } from "./errors.ts";

export function parseDriverConfig<T extends TSchema>(driverId: string, schema: T, config: unknown): Static<T> {
  const withDefaults = Value.Default(schema, structuredClone(config ?? {}));
  const first = Value.Errors(schema, withDefaults).First();
  if (first) throw new DriverConfigError(driverId, readablePath(first.path, "config"), `${first.message} (got ${gotValue(first.path, first.value, 200)})`);
  return withDefaults as Static<T>;
}
