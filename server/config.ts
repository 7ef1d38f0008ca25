// Loads and validates the configuration files of a config directory: gateway.yml (optional),
// endpoints.yml, drivers.yml, variables.yml. A file that fails validation is refused with a
// ConfigError naming the file, the path inside it and what was expected; nothing half-loaded runs.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TSchema, Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { parseDocument } from "yaml";
import { ConfigError, DriversFile, EndpointsFile, GatewayConfig, gotValue, readablePath, redactSecrets, VariablesFile, type Variable } from "../schemas/index.ts";

export interface Config {
  dir: string;
  gateway: GatewayConfig;
  endpoints: EndpointsFile["endpoints"];
  drivers: DriversFile["drivers"];
  tags: Variable[];
}

/** Extra checks a driver type contributes (e.g. Modbus register overlaps): problems with a path. */
export type TagValidator = (driverId: string, tags: readonly Variable[]) => { tag: string; field: string; message: string }[];

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

function loadYaml<T extends TSchema>(dir: string, name: string, schema: T, required: boolean): Static<T> {
  const file = join(dir, name);
  let raw: unknown = {};
  if (existsSync(file)) {
    const doc = parseDocument(substituteEnv(readFileSync(file, "utf8"), file), { prettyErrors: true });
    if (doc.errors.length) {
      const e = doc.errors[0]!;
      const pos = e.linePos?.[0];
      throw new ConfigError(file, pos ? `line ${pos.line}, column ${pos.col}` : "", `not valid YAML: ${redactSecrets(e.message.split("\n")[0]!)}`);
    }
    raw = doc.toJS() ?? {};
  } else if (required) {
    throw new ConfigError(file, "", "file not found");
  }
  const value = Value.Default(schema, raw);
  const first = Value.Errors(schema, value).First();
  if (first) {
    throw new ConfigError(file, readablePath(first.path), `${first.message}; got ${gotValue(first.path, first.value)}`);
  }
  return value as Static<T>;
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

export function loadConfig(dir: string, validators: ReadonlyMap<string, TagValidator> = new Map()): Config {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new ConfigError(abs, "", "config directory not found");
  const gateway = loadYaml(abs, "gateway.yml", GatewayConfig, false);
  applyEnv(gateway);
  gateway.dataDir = resolve(gateway.dataDir); // relative to the working directory, like ./data
  const { endpoints } = loadYaml(abs, "endpoints.yml", EndpointsFile, false);
  const { drivers } = loadYaml(abs, "drivers.yml", DriversFile, true);
  const { tags } = loadYaml(abs, "variables.yml", VariablesFile, true);

  const driversFile = join(abs, "drivers.yml");
  const varsFile = join(abs, "variables.yml");
  const ids = new Set<string>();
  drivers.forEach((d, i) => {
    if (ids.has(d.id)) throw new ConfigError(driversFile, `drivers[${i}].id`, `duplicate driver id '${d.id}'`);
    ids.add(d.id);
    if (d.endpoint !== undefined && !(d.endpoint in endpoints)) {
      throw new ConfigError(driversFile, `drivers[${i}].endpoint`, `unknown endpoint '${d.endpoint}' (defined: ${Object.keys(endpoints).join(", ") || "none"})`);
    }
  });
  const seen = new Map<string, number>();
  tags.forEach((t, i) => {
    if (seen.has(t.tag)) throw new ConfigError(varsFile, `tags[${i}].tag`, `duplicate tag '${t.tag}' (first at tags[${seen.get(t.tag)}])`);
    seen.set(t.tag, i);
    if (!ids.has(t.driver)) throw new ConfigError(varsFile, `tags[${i}].driver`, `unknown driver '${t.driver}'`);
    if (t.min !== undefined && t.max !== undefined && t.min > t.max) throw new ConfigError(varsFile, `tags[${i}]`, `min ${t.min} is above max ${t.max}`);
  });
  for (const d of drivers) {
    const validate = validators.get(d.type);
    if (!validate) continue;
    const own = tags.filter((t) => t.driver === d.id);
    const problem = validate(d.id, own)[0];
    if (problem) {
      const i = tags.findIndex((t) => t.tag === problem.tag);
      throw new ConfigError(varsFile, `tags[${i}]${problem.field ? `.${problem.field}` : ""}`, problem.message);
    }
  }
  return { dir: abs, gateway, endpoints, drivers, tags };
}
