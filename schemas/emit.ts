// Emits the JSON Schema files for editors (schemas/json/*.schema.json) from the TypeBox schemas:
// `bun schemas/emit.ts`. The files are committed; test/schemas/emit.test.ts fails when they drift, and
// test/schemas/shipped-configs.test.ts checks (with ajv) that they accept every config the repo ships.
// They describe the files as written, before the loader applies defaults and `${ENV}` references.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TSchema } from "@sinclair/typebox";
import { DriversFile, EndpointsFile, GatewayConfig, VariablesFile } from "./config.ts";
import { AckFrame, CmdFrame, DataFrame, EventFrame } from "./frames.ts";

const DRAFT = "http://json-schema.org/draft-07/schema#";

/**
 * A TypeBox schema as plain JSON Schema. TypeBox's own `bigint` type is no JSON type: a 64-bit integer
 * travels in JSON as a decimal string, so it is described as one.
 */
function plain(schema: TSchema): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(schema, (_k, v) =>
      v && typeof v === "object" && !Array.isArray(v) && v.type === "bigint"
        ? { type: "string", pattern: "^-?[0-9]+$", description: "64-bit integer as decimal text" }
        : v,
    ),
  );
}

// `${NAME}` / `${NAME:-default}`: replaced by the loader before validation (server/config.ts substituteEnv)
const ENV_REFERENCE = { type: "string", pattern: "^\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}$", description: "an environment variable reference, replaced at load" };

/**
 * A config schema as its files are written: a field with a default may be left out (TypeBox lists every
 * property as required, defaults being applied before it validates), and a constrained string may be an
 * environment reference (the demo's `hs256Secret: "${EDGE_JWT_SECRET:-}"` is 20 characters as written).
 */
function asWritten(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(asWritten);
  if (!node || typeof node !== "object") return node;
  const out: Record<string, unknown> = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, asWritten(v)]));
  const props = out.properties as Record<string, { default?: unknown }> | undefined;
  if (Array.isArray(out.required) && props) {
    const required = (out.required as string[]).filter((k) => props[k]?.default === undefined);
    if (required.length) out.required = required;
    else delete out.required;
  }
  if (out.type === "string" && (out.minLength !== undefined || out.pattern !== undefined)) {
    const { description, default: dflt, ...constrained } = out;
    return { anyOf: [constrained, ENV_REFERENCE], ...(description === undefined ? {} : { description }), ...(dflt === undefined ? {} : { default: dflt }) };
  }
  return out;
}

function file(schema: TSchema, title: string): Record<string, unknown> {
  return { $schema: DRAFT, title, ...(asWritten(plain(schema)) as Record<string, unknown>) };
}

/** File name -> JSON Schema document, in a stable order. */
export function jsonSchemas(): Record<string, Record<string, unknown>> {
  const frames = { DataFrame, CmdFrame, AckFrame, EventFrame };
  return {
    "gateway.schema.json": file(GatewayConfig, "gateway.yml: ports, data directory, log and supervisor tuning"),
    "endpoints.schema.json": file(EndpointsFile, "endpoints.yml: device endpoints by id"),
    "drivers.schema.json": file(DriversFile, "drivers.yml: driver instances"),
    "variables.schema.json": file(VariablesFile, "variables.yml: the tag catalog"),
    "frames.schema.json": {
      $schema: DRAFT,
      $id: "frames",
      title: "A frame of the event log: data, cmd, ack or event (told apart by kind)",
      oneOf: Object.keys(frames).map((name) => ({ $ref: `#/definitions/${name}` })),
      definitions: Object.fromEntries(Object.entries(frames).map(([name, s]) => {
        const { $id: _id, ...rest } = plain(s);
        return [name, rest];
      })),
    },
  };
}

/** The text of each file as written (2-space JSON and a final newline). */
export function jsonSchemaTexts(): Record<string, string> {
  return Object.fromEntries(Object.entries(jsonSchemas()).map(([name, doc]) => [name, JSON.stringify(doc, null, 2) + "\n"]));
}

export const JSON_SCHEMA_DIR = join(import.meta.dir, "json");

if (import.meta.main) {
  mkdirSync(JSON_SCHEMA_DIR, { recursive: true });
  for (const [name, text] of Object.entries(jsonSchemaTexts())) {
    writeFileSync(join(JSON_SCHEMA_DIR, name), text);
    console.log(`wrote schemas/json/${name}`);
  }
}
