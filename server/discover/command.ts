// `edgectl discover opcua|modbus ...`: the options of the command line, the discovery, the files
// written to --out (default ./discovered/<driver id>) and a summary on stdout. Bad options are one
// line on stderr naming the option.
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { DiscoverError, DiscoverOptionError, writeFiles } from "./files.ts";
import { discoverModbus, parseUnits, type ProbeArea } from "./modbus.ts";
import { discoverOpcua } from "./opcua.ts";

export { DISCOVER_USAGE } from "./usage.ts";

const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new DiscoverOptionError(`--${name}: '${v}' is not a number`);
  return n;
};

async function opcua(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      driver: { type: "string" },
      "max-depth": { type: "string" },
      "max-nodes": { type: "string" },
      "timeout-ms": { type: "string" },
      start: { type: "string" },
      user: { type: "string" },
      password: { type: "string" },
      "password-env": { type: "string" },
      "security-mode": { type: "string" },
      "security-policy": { type: "string" },
      "pki-dir": { type: "string" },
      "trust-server-certificate": { type: "boolean" },
      force: { type: "boolean" },
    },
  });
  const [url] = positionals;
  if (!url || positionals.length > 1) throw new DiscoverOptionError("discover opcua: give one server URL (e.g. opc.tcp://10.0.0.5:4840)");
  if (!values.user && (values.password || values["password-env"])) throw new DiscoverOptionError("discover opcua: --password/--password-env need --user");
  const password = values.password ?? (values["password-env"] ? process.env[values["password-env"]] : undefined);
  const r = await discoverOpcua({
    url,
    driverId: values.driver,
    maxDepth: int("max-depth", values["max-depth"]),
    maxNodes: int("max-nodes", values["max-nodes"]),
    timeoutMs: int("timeout-ms", values["timeout-ms"]),
    startNodeId: values.start,
    securityMode: values["security-mode"] as never, // checked by the driver's config schema
    securityPolicy: values["security-policy"] as never,
    user: values.user ? { name: values.user, password, passwordEnv: values["password-env"] } : undefined,
    pkiDir: values["pki-dir"],
    trustServerCertificate: values["trust-server-certificate"],
  });
  const out = values.out ?? join("discovered", values.driver ?? "opcua1");
  for (const p of writeFiles(out, r.files, values.force)) console.log(`wrote ${relative(process.cwd(), p) || p}`);
  console.log(`${r.tags} tags from ${r.browsed} nodes browsed, ${r.skipped.length} variables skipped${r.truncated ? " (browse cut by --max-depth/--max-nodes)" : ""}`);
  return 0;
}

async function modbus(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      units: { type: "string" },
      areas: { type: "string" },
      "max-address": { type: "string" },
      block: { type: "string" },
      rate: { type: "string" },
      "timeout-ms": { type: "string" },
      "max-requests": { type: "string" },
      out: { type: "string" },
      driver: { type: "string" },
      force: { type: "boolean" },
    },
  });
  const [url] = positionals;
  if (!url || positionals.length > 1) throw new DiscoverOptionError("discover modbus: give one endpoint URL (e.g. tcp://10.0.0.5:502)");
  if (!values.units) throw new DiscoverOptionError("discover modbus: --units is required (e.g. --units 1-10)");
  const areas = (values.areas ?? "holding").split(",").map((a) => a.trim());
  const wrong = areas.find((a) => a !== "holding" && a !== "input");
  if (wrong !== undefined) throw new DiscoverOptionError(`--areas: '${wrong}' is not holding or input`);
  const r = await discoverModbus({
    url,
    units: parseUnits(values.units),
    areas: areas as ProbeArea[],
    maxAddress: int("max-address", values["max-address"]),
    blockSize: int("block", values.block),
    rate: int("rate", values.rate),
    timeoutMs: int("timeout-ms", values["timeout-ms"]),
    maxRequests: int("max-requests", values["max-requests"]),
    driverId: values.driver,
  });
  const out = values.out ?? join("discovered", values.driver ?? "modbus1");
  const summary = r.units.map((u) => `unit ${u.unitId}: ${u.answered ? u.ranges.map((x) => `${x.area} ${x.start}-${x.end}`).join(", ") || "answers, nothing readable" : `no answer (${u.reason})`}`);
  summary.push(`${r.tags} registers in ${r.requests} requests${r.truncated ? " (cut by --max-requests)" : ""}`);
  if (r.tags === 0) {
    // a draft without a tag validates, loads and polls nothing: an integrator would take it for a result
    for (const line of summary) console.error(line);
    console.error(`nothing written to ${out}: no readable register found${r.units.some((u) => u.answered) ? "" : ` (no unit of ${values.units} answered at ${url})`}`);
    return 1;
  }
  for (const p of writeFiles(out, r.files, values.force)) console.log(`wrote ${relative(process.cwd(), p) || p}`);
  for (const line of summary) console.log(line);
  return 0;
}

/** `edgectl discover ...`; returns the exit code. */
export async function discoverCommand(args: string[]): Promise<number> {
  const [kind, ...rest] = args;
  try {
    if (kind === "opcua") return await opcua(rest);
    if (kind === "modbus") return await modbus(rest);
    console.error(`discover: what? 'discover opcua <url>' or 'discover modbus <url> --units 1-10'${kind ? ` (not '${kind}')` : ""}`);
    return 2;
  } catch (e) {
    if (e instanceof DiscoverError) {
      console.error(e.message);
      return 1;
    }
    throw e;
  }
}
