// The JSON Schemas shipped for editors (schemas/json) accept every config the repository ships (the demo,
// the README's examples copied into fixtures/readme) and refuse known-bad ones, checked with ajv, a
// validator independent of TypeBox. Files are checked as written (before defaults and `${ENV}`).
import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import { parse } from "yaml";
import { JSON_SCHEMA_DIR } from "../../schemas/emit.ts";

const KINDS = ["gateway", "endpoints", "drivers", "variables"] as const;
type Kind = (typeof KINDS)[number];

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = Object.fromEntries(
  KINDS.map((k) => [k, ajv.compile(JSON.parse(readFileSync(join(JSON_SCHEMA_DIR, `${k}.schema.json`), "utf8")))]),
) as Record<Kind, ValidateFunction>;

/** ajv's errors of a document, as "path: message" lines (empty: valid). */
function errorsOf(kind: Kind, doc: unknown): string[] {
  const validate = validators[kind];
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || "/"}: ${e.message}`);
}

const kindOf = (name: string): Kind => {
  const k = KINDS.find((k) => name === `${k}.yml` || name.endsWith(`.${k}.yml`));
  if (!k) throw new Error(`${name}: which config file is it? name it <n>.<gateway|endpoints|drivers|variables>.yml`);
  return k;
};

const ROOT = join(import.meta.dir, "..", "..");
const shipped = [
  ...readdirSync(join(ROOT, "server", "demo", "config")).filter((n) => n.endsWith(".yml")).map((n) => join("server", "demo", "config", n)),
  ...readdirSync(join(import.meta.dir, "fixtures", "readme")).map((n) => join("test", "schemas", "fixtures", "readme", n)),
];

describe("shipped JSON Schemas", () => {
  it("cover the demo config and at least ten README examples", () => {
    expect(shipped.filter((p) => p.startsWith("server")).length).toBe(4);
    expect(shipped.filter((p) => p.includes("readme")).length).toBeGreaterThanOrEqual(10);
  });

  for (const path of shipped) {
    it(`accept ${path}`, () => {
      const doc = parse(readFileSync(join(ROOT, path), "utf8")) ?? {};
      expect({ path, errors: errorsOf(kindOf(path.split("/").at(-1)!), doc) }).toEqual({ path, errors: [] });
    });
  }

  const bad: [string, Kind, unknown, string][] = [
    ["a tag type that does not exist", "variables", { tags: [{ tag: "a/b", driver: "d", type: "float" }] }, "/tags/0/type"],
    ["a tag without its driver", "variables", { tags: [{ tag: "a/b", type: "float64" }] }, "/tags/0"],
    ["an unknown key in a driver entry", "drivers", { drivers: [{ id: "plc", type: "modbus", colour: "red" }] }, "/drivers/0"],
    ["an endpoint without url", "endpoints", { endpoints: { plc: { timeoutMs: 1000 } } }, "/endpoints/plc"],
    ["a batch size that is not a number", "gateway", { log: { batchSize: "many" } }, "/log/batchSize"],
    ["an HS256 secret shorter than 32 characters", "gateway", { auth: { hs256Secret: "short" } }, "/auth/hs256Secret"],
    ["a port out of range", "gateway", { http: { port: 70000 } }, "/http/port"],
  ];
  for (const [what, kind, doc, path] of bad) {
    it(`refuse ${what} at ${path}`, () => {
      const errors = errorsOf(kind, doc);
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.some((e) => e.startsWith(`${path}:`))).toBe(true);
    });
  }
});
