// edgectl: the gateway's command line for integrators (`npm run edgectl -- <command>`). Small on purpose:
// check a config without starting anything, mint an API token, hash an OPC UA password, ask a running
// gateway how it is; sign, verify and manage plugins (plugin-command.ts).
import { existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Readiness } from "../schemas/index.ts";
import { DISCOVER_USAGE } from "./discover/usage.ts";
import { PLUGIN_USAGE, pluginCommands } from "./plugin-command.ts";
// Each command loads what it needs when it runs: loading them all (config check, OPC UA, Modbus, NATS,
// DuckDB) cost about 1 s of CPU before any command, `token` included (10 ms alone), measured; a loaded
// machine made that 15 s and more.

export const EDGECTL_USAGE = `usage: npm run edgectl -- <command> [options]

commands:
  check [--config DIR]    validate a config directory (every file, endpoint URL, driver and its config
                          block, bridge sections) without starting anything; one line per problem,
                          "file: path: message"; exit 0 when valid, 1 otherwise
                          (DIR default: $EDGE_CONFIG_DIR, else ./config)
  token [options]         mint an HS256 token for the API (token --help for the options)
  hash-password [pw]      hash a password for gateway.yml opcua.users[].passwordHash (or pw on stdin)
  status [--url URL]      a running gateway's readiness (GET /readyz), printed readably; exit 0 when
                          ready, 1 when not ready or unreachable
                          (URL default: http://127.0.0.1:$EDGE_HTTP_PORT, else port 8080)
  backup [--url URL] [--token JWT]
                          an online backup of a running gateway's log and archive (POST /api/backup,
                          a token with scope "admin"; JWT default: $EDGE_TOKEN); prints where it was
                          written; restore: deploy/README.md
${DISCOVER_USAGE}
${PLUGIN_USAGE}
  nats provision [--config DIR]
                          create or check the JetStream stream of gateway.yml's nats: section (subjects,
                          replicas, max age/bytes, duplicate window), and with nats.commands the command
                          stream and this gateway's consumer; idempotent: prints created,
                          updated or unchanged; exit 0 when the stream is as configured
  help, --help            this text`;

const shortPath = (file: string) => {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith("..") ? rel : file;
};

const configDir = (given: string | undefined) => given ?? process.env.EDGE_CONFIG_DIR ?? (existsSync("config") ? "config" : undefined);

async function check(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: "string" } } });
  const dir = configDir(values.config);
  if (!dir) {
    console.error("check: which config directory? give --config DIR (or set EDGE_CONFIG_DIR)");
    return 2;
  }
  const { checkConfig } = await import("./config-check.ts");
  const { checkRuleFiles } = await import("../bridges/rules/rule-file.ts");
  const { Catalog } = await import("../schemas/index.ts");
  const { config, problems } = await checkConfig(dir);
  for (const p of problems) console.log(`${shortPath(p.file)}: ${p.path ? `${p.path}: ` : ""}${p.detail}`);
  if (!config) {
    console.error(`${problems.length} problem${problems.length === 1 ? "" : "s"} in ${shortPath(resolve(dir))}`);
    return 1;
  }
  // rule files are not part of the config load (a bad rule never stops the gateway), but checked here
  const rules = await checkRuleFiles(config.dir, new Catalog(config.tags));
  for (const p of rules.problems) console.log(`${shortPath(join(config.dir, p.file))}:${p.line !== null ? `${p.line}:` : ""} ${p.reason}`);
  if (rules.problems.length) {
    console.error(`${rules.problems.length} rule file${rules.problems.length === 1 ? "" : "s"} refused in ${shortPath(resolve(dir))}`);
    return 1;
  }
  const enabled = config.drivers.filter((d) => d.enabled).length;
  console.log(`ok: ${shortPath(config.dir)}: ${Object.keys(config.endpoints).length} endpoints, ${enabled} of ${config.drivers.length} drivers enabled, ${config.tags.length} tags`);
  if (rules.rules) console.log(`ok: ${rules.rules} rule file${rules.rules === 1 ? "" : "s"}`);
  return 0;
}

/** The readiness document as lines for a terminal. */
export function formatReadiness(doc: Readiness): string {
  const { log, drivers, consumers, services } = doc.components;
  const lines = [`${doc.gatewayId}: ${doc.status.toUpperCase()} (checked ${doc.checkedAt})`];
  lines.push(`  log        ${log.state.padEnd(9)} head ${log.head}, queued ${log.queueDepth}${log.degraded ? `, degraded: ${log.reason}` : ""}`);
  // an Active driver's lastError is history (it kept "TLS handshake ... refused our client certificate" beside
  // Active after the certificate was fixed, found from outside): shown for a driver that is not Active only
  for (const d of drivers.drivers) lines.push(`  driver     ${d.id.padEnd(12)} ${d.type.padEnd(10)} ${d.state}${d.lastError && d.state !== "Active" ? `  (${d.lastError})` : ""}`);
  for (const c of consumers.consumers) lines.push(`  consumer   ${c.name.padEnd(20)} ${c.state.padEnd(9)} lag ${c.lagFrames} frames, ${c.lagSeconds.toFixed(1)} s`);
  for (const [name, s] of Object.entries(services)) lines.push(`  service    ${name.padEnd(20)} ${s.state}`);
  for (const r of doc.reasons) lines.push(`  - ${r}`);
  return lines.join("\n");
}

async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { url: { type: "string" } } });
  const base = baseUrl(values.url);
  let res: Response;
  try {
    res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    console.error(`status: no answer from ${base}/readyz: ${(e as Error).message}`);
    return 1;
  }
  if (res.status !== 200 && res.status !== 503) {
    console.error(`status: ${base}/readyz answered HTTP ${res.status}`);
    return 1;
  }
  console.log(formatReadiness((await res.json()) as Readiness));
  return res.status === 200 ? 0 : 1;
}

const baseUrl = (url: string | undefined) => (url ?? `http://127.0.0.1:${process.env.EDGE_HTTP_PORT || 8080}`).replace(/\/+$/, "");

async function backup(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { url: { type: "string" }, token: { type: "string" } } });
  const token = values.token ?? process.env.EDGE_TOKEN;
  if (!token) {
    console.error('backup: a token with scope "admin" is needed: --token JWT or EDGE_TOKEN (mint one with: npm run edgectl -- token --scope admin ...)');
    return 2;
  }
  const { requestBackup } = await import("./api/backup.ts");
  const { BackupError } = await import("../storage/backup.ts");
  try {
    const r = await requestBackup(baseUrl(values.url), token);
    console.log(JSON.stringify(r, null, 2));
    return 0;
  } catch (e) {
    console.error(`backup: ${e instanceof BackupError ? e.message : `no answer from ${baseUrl(values.url)}: ${(e as Error).message}`}`);
    return 1;
  }
}

async function nats(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { config: { type: "string" } }, allowPositionals: true });
  if (positionals.join(" ") !== "provision") {
    console.error("nats: the subcommand is 'provision' (see --help)");
    return 2;
  }
  const dir = configDir(values.config);
  if (!dir) {
    console.error("nats provision: which config directory? give --config DIR (or set EDGE_CONFIG_DIR)");
    return 2;
  }
  const { checkConfig } = await import("./config-check.ts");
  const { provisionCommand } = await import("../bridges/nats/index.ts");
  const { config, problems } = await checkConfig(dir);
  for (const p of problems) console.error(`${shortPath(p.file)}: ${p.path ? `${p.path}: ` : ""}${p.detail}`);
  if (!config) return 1;
  try {
    console.log(await provisionCommand(config.gateway.nats, join(config.dir, "gateway.yml"), config.gateway.gatewayId));
    return 0;
  } catch (e) {
    console.error(`nats provision: ${(e as Error).message}`);
    return 1;
  }
}

const commands: Record<string, (args: string[]) => Promise<number>> = {
  check,
  token: async (args) => (await import("./token.ts")).tokenCommand(args),
  "hash-password": async (args) => (await import("../bridges/opcua-server/hash-password.ts")).hashPasswordCommand(args),
  status,
  backup,
  discover: async (args) => (await import("./discover/command.ts")).discoverCommand(args),
  nats,
  ...pluginCommands,
};

/** Runs one command line; returns the exit code. Bad options are one line on stderr, never a stack trace. */
export async function edgectl(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(EDGECTL_USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`edgectl: unknown command '${name}'\n\n${EDGECTL_USAGE}`);
    return 2;
  }
  if (name !== "token" && name !== "hash-password" && (args.includes("--help") || args.includes("-h"))) {
    console.log(EDGECTL_USAGE);
    return 0;
  }
  try {
    return await command(args);
  } catch (e) {
    // parseArgs refuses unknown options with a TypeError carrying a code; say it in one line
    if ((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`${name}: ${(e as Error).message} (see --help)`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) process.exit(await edgectl(process.argv.slice(2)));
