// Loads and validates the configuration files of a config directory: gateway.yml (optional),
// endpoints.yml, drivers.yml, variables.yml. A file that fails validation is refused with a
// ConfigError naming the file, the path inside it and what was expected; nothing half-loaded runs.
// `loadConfig` checks the files against their schemas and each other; `loadGatewayConfig` (start, hot
// reload, `edgectl check`) adds what only the drivers and bridges know (server/config-check.ts).
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TSchema, Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { parseDocument } from "yaml";
import { applyDefaults } from "../schemas/defaults.ts";
import { tagProblems } from "../schemas/tag-checks.ts";
import { expectedMessage } from "../schemas/validate.ts";
import { alarmConfigProblems, ConfigError, DriversFile, EndpointsFile, GatewayConfig, gotValue, readablePath, redactSecrets, VariablesFile, type Variable } from "../schemas/index.ts";

export interface Config {
  dir: string;
  gateway: GatewayConfig;
  endpoints: EndpointsFile["endpoints"];
  drivers: DriversFile["drivers"];
  tags: Variable[];
}

/** Extra checks a driver type contributes (e.g. Modbus register overlaps): problems with a path. */
export type TagValidator = (driverId: string, tags: readonly Variable[]) => { tag: string; field: string; message: string }[];

/** Problems collected so far; `fail` records one and goes on, so that a check lists them all. */
export type Problems = ConfigError[];

/**
 * Runs `check`, recording a ConfigError it throws as a problem. Anything else is a bug of a validator,
 * recorded against `file` rather than crashing a check or a reload.
 */
export async function collect(problems: Problems, file: string, path: string, check: () => unknown): Promise<void> {
  try {
    await check();
  } catch (e) {
    problems.push(e instanceof ConfigError ? e : new ConfigError(file, path, (e as Error).message ?? String(e)));
  }
}

/**
 * `${NAME}` and `${NAME:-default}` in a config file are replaced by the environment variable, so one
 * file serves several sites (e.g. `url: "tcp://${PLC_HOST:-127.0.0.1}:502"`). `$${` escapes.
 */
export function substituteEnv(text: string, file: string): string {
  return text.replace(/\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (whole, escaped: string, name: string, fallback: string | undefined, at: number) => {
    if (escaped) return whole.slice(1);
    const v = process.env[name];
    if (v !== undefined && v !== "") return v;
    if (fallback !== undefined) return fallback;
    const line = text.slice(0, at).split("\n").length;
    throw new ConfigError(file, `line ${line}`, `environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
  });
}


const checkers = new WeakMap<TSchema, TypeCheck<TSchema>>();
/** A compiled check of `schema`: about ten times faster than Value.Errors on a 10,000-tag catalog that is valid. */
function checkerOf(schema: TSchema): TypeCheck<TSchema> {
  let c = checkers.get(schema);
  if (!c) checkers.set(schema, (c = TypeCompiler.Compile(schema)));
  return c;
}

/** Every schema problem of a value, one per path, secret values redacted (schemas/redact.ts). */
export function schemaProblems(schema: TSchema, value: unknown, file: string, basePath = ""): ConfigError[] {
  if (checkerOf(schema).Check(value)) return [];
  const byPath = new Map<string, ConfigError>();
  for (const e of Value.Errors(schema, value)) {
    const path = readablePath(e.path, basePath);
    if (byPath.has(path)) continue;
    byPath.set(path, new ConfigError(file, path, `${expectedMessage(e)}; got ${gotValue(e.path, e.value)}`));
  }
  return [...byPath.values()];
}

/** Files at least this large are parsed by Bun's parser first (parseYamlFast). */
const FAST_YAML_BYTES = 64 * 1024;

/**
 * Bun's native YAML parser for large files: a 10,000-tag variables.yml (900 KB) in tens of ms where the
 * `yaml` package takes seconds (it builds a document with source positions), which a hot reload cannot
 * afford. Smaller files, a text Bun refuses (for the error's line and column) and any text with a merge
 * key (`<<`, which Bun merges and YAML 1.2 does not) go to the package. The one known difference left:
 * Bun takes the last of duplicate keys where the package refuses them (only in files this large).
 */
function parseYamlFast(text: string): { ok: true; value: unknown } | { ok: false } {
  const yaml = (globalThis as { Bun?: { YAML?: { parse(text: string): unknown } } }).Bun?.YAML;
  if (!yaml || text.length < FAST_YAML_BYTES || text.includes("<<")) return { ok: false };
  try {
    return { ok: true, value: yaml.parse(text) };
  } catch {
    return { ok: false };
  }
}

function loadYaml<T extends TSchema>(dir: string, name: string, schema: T, required: boolean, problems: Problems): Static<T> | undefined {
  const file = join(dir, name);
  let raw: unknown = {};
  if (existsSync(file)) {
    let text: string;
    try {
      text = substituteEnv(readFileSync(file, "utf8"), file);
    } catch (e) {
      problems.push(e instanceof ConfigError ? e : new ConfigError(file, "", `cannot read: ${(e as Error).message}`));
      return undefined;
    }
    const fast = parseYamlFast(text);
    if (fast.ok) raw = fast.value ?? {};
    const doc = fast.ok ? null : parseDocument(text, { prettyErrors: true });
    if (doc && doc.errors.length) {
      const e = doc.errors[0]!;
      const pos = e.linePos?.[0];
      problems.push(new ConfigError(file, pos ? `line ${pos.line}, column ${pos.col}` : "", `not valid YAML: ${redactSecrets(e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""))}`)); // the position is the path
      return undefined;
    }
    if (doc) raw = doc.toJS() ?? {};
  } else if (required) {
    problems.push(new ConfigError(file, "", "file not found"));
    return undefined;
  }
  // schemas/defaults.ts: Value.Default's result, a few times faster on a large catalog (hot reload)
  const value = applyDefaults(schema, raw);
  const found = schemaProblems(schema, value, file);
  problems.push(...found);
  return found.length ? undefined : (value as Static<T>);
}

const envInt = (name: string): number | undefined => {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`environment ${name}`, "", `expected a port number 0..65535, got '${v}'`);
  return n;
};

/** Environment overrides, applied over gateway.yml. */
function applyEnv(g: GatewayConfig): void {
  g.http.port = envInt("EDGE_HTTP_PORT") ?? g.http.port;
  g.opcua.port = envInt("EDGE_OPCUA_PORT") ?? g.opcua.port;
  g.modbusSlave.port = envInt("EDGE_MODBUS_SLAVE_PORT") ?? g.modbusSlave.port;
  g.demo.port = envInt("EDGE_DEMO_PLC_PORT") ?? g.demo.port;
  if (process.env.EDGE_DATA_DIR) g.dataDir = process.env.EDGE_DATA_DIR;
  if (process.env.EDGE_GATEWAY_ID) g.gatewayId = process.env.EDGE_GATEWAY_ID;
}

/** References between the files: ids unique, endpoints and drivers known, min below max, per-type tag checks. */
function crossCheck(config: Config, validators: ReadonlyMap<string, TagValidator>, problems: Problems): void {
  const { dir, endpoints, drivers, tags } = config;
  const driversFile = join(dir, "drivers.yml");
  const varsFile = join(dir, "variables.yml");
  const ids = new Set<string>();
  drivers.forEach((d, i) => {
    if (ids.has(d.id)) problems.push(new ConfigError(driversFile, `drivers[${i}].id`, `duplicate driver id '${d.id}'`));
    ids.add(d.id);
    if (d.endpoint !== undefined && !(d.endpoint in endpoints)) {
      problems.push(new ConfigError(driversFile, `drivers[${i}].endpoint`, `unknown endpoint '${d.endpoint}' (defined: ${Object.keys(endpoints).join(", ") || "none"})`));
    }
  });
  const seen = new Map<string, number>();
  tags.forEach((t, i) => {
    if (seen.has(t.tag)) problems.push(new ConfigError(varsFile, `tags[${i}].tag`, `duplicate tag '${t.tag}' (first at tags[${seen.get(t.tag)}])`));
    else seen.set(t.tag, i);
    if (t.min !== undefined && t.max !== undefined && t.min > t.max) problems.push(new ConfigError(varsFile, `tags[${i}]`, `min ${t.min} is above max ${t.max}`));
    if (t.alarms) for (const p of alarmConfigProblems(t.alarms, t.type)) problems.push(new ConfigError(varsFile, `tags[${i}].${p.path}`, p.message));
  });
  for (const p of tagProblems(tags, ids)) problems.push(new ConfigError(varsFile, `tags[${p.index}]${p.field ? `.${p.field}` : ""}`, p.message));
  for (const d of drivers) {
    const validate = validators.get(d.type);
    if (!validate) continue;
    for (const problem of validate(d.id, tags.filter((t) => t.driver === d.id))) {
      const i = tags.findIndex((t) => t.tag === problem.tag);
      problems.push(new ConfigError(varsFile, `tags[${i}]${problem.field ? `.${problem.field}` : ""}`, problem.message));
    }
  }
}

/**
 * The files checked against their schemas and each other, with every problem found (a file that fails
 * its schema stops the checks that depend on it). `config` is set only when there is no problem.
 */
export function readConfig(dir: string, validators: ReadonlyMap<string, TagValidator> = new Map()): { config?: Config; problems: Problems } {
  const abs = resolve(dir);
  if (!existsSync(abs)) return { problems: [new ConfigError(abs, "", "config directory not found")] };
  const problems: Problems = [];
  const gateway = loadYaml(abs, "gateway.yml", GatewayConfig, false, problems);
  if (gateway) {
    try {
      applyEnv(gateway);
    } catch (e) {
      problems.push(e as ConfigError);
    }
    gateway.dataDir = resolve(gateway.dataDir); // relative to the working directory, like ./data
  }
  const endpoints = loadYaml(abs, "endpoints.yml", EndpointsFile, false, problems)?.endpoints;
  const drivers = loadYaml(abs, "drivers.yml", DriversFile, true, problems)?.drivers;
  const tags = loadYaml(abs, "variables.yml", VariablesFile, true, problems)?.tags;
  if (!gateway || !endpoints || !drivers || !tags || problems.length) return { problems };
  const config: Config = { dir: abs, gateway, endpoints, drivers, tags };
  crossCheck(config, validators, problems);
  return problems.length ? { problems } : { config, problems };
}

/** The files checked against their schemas and each other; throws the first problem (ConfigError). */
export function loadConfig(dir: string, validators: ReadonlyMap<string, TagValidator> = new Map()): Config {
  const { config, problems } = readConfig(dir, validators);
  if (!config) throw problems[0]!; // no config means at least one problem
  return config;
}
