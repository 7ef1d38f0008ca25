// The checks of a configuration that only the drivers and bridges can make: endpoint URLs (parsed, and
// refused when no driver serves the scheme yet), driver types, each driver's `config:` block (the
// driver's own init(), which by contract does no I/O), and the bridge and auth sections of gateway.yml.
// `loadGatewayConfig` is THE config load of the gateway: used at start, by hot reload and by `edgectl check`.
import { join } from "node:path";
import { builtinDrivers, DriverConfigError, parseServedEndpointUrl, type DriverFactory } from "../drivers/index.ts";
import { rtuLineOf } from "../drivers/modbus/index.ts";
import { parseModbusSlaveConfig } from "../bridges/modbus-slave/index.ts";
import { parseNatsConfig } from "../bridges/nats/config.ts";
import { parseMqttNorthConfig } from "../bridges/mqtt-north/config.ts";
import { parseOpcuaConfig } from "../bridges/opcua-server/config.ts";
import { rtuUnitProblem } from "../drivers/modbus/validate.ts";
import { checkDecoderPlugin, checkPluginDriver } from "../drivers/plugins/check.ts";
import { ConfigError } from "../schemas/index.ts";
import { readTlsMaterial, resolveTlsFiles, TlsHandshakeError } from "../storage/tls.ts";
import { TokenVerifier } from "./auth/verify.ts";
import { collect, readConfig, type Config, type Problems } from "./config.ts";
import { tagValidators } from "./validators.ts";

function checkEndpoints(config: Config, problems: Problems): void {
  const file = join(config.dir, "endpoints.yml");
  const lines = new Map<string, { id: string; settings: string }>();
  for (const [id, ep] of Object.entries(config.endpoints)) {
    try {
      const parsed = parseServedEndpointUrl(ep.url);
      const { scheme } = parsed;
      if (ep.tls && scheme !== "tls+tcp" && scheme !== "mqtts") problems.push(new ConfigError(file, `endpoints.${id}.tls`, `TLS settings need a tls+tcp:// or mqtts:// URL, not ${scheme}://`));
      else if (ep.tls) checkTlsFiles(file, id, ep.tls, config.dir, problems);
      const line = rtuLineOf(parsed);
      if (!line) continue;
      const first = lines.get(line.key);
      if (!first) lines.set(line.key, { id, settings: line.settings });
      else if (first.settings !== line.settings) {
        problems.push(
          new ConfigError(
            file,
            `endpoints.${id}.url`,
            `${line.name} is also endpoint '${first.id}', with other settings (${first.settings} there, ${line.settings} here): the drivers on one line share one connection, which would keep the settings of whichever opened it first; give both the same settings, or use one endpoint`,
          ),
        );
      }
    } catch (e) {
      problems.push(new ConfigError(file, `endpoints.${id}.url`, (e as Error).message));
    }
  }
}

/**
 * The TLS files must be there and usable: a mistyped path or a key of another certificate is a config
 * mistake (refused at start and on reload, told by `edgectl check`), as for the MQTT uplink's files. A
 * certificate's validity is not checked here: it is renewed on disk, and read at every connection attempt.
 */
function checkTlsFiles(file: string, id: string, tls: NonNullable<Config["endpoints"][string]["tls"]>, dir: string, problems: Problems): void {
  try {
    readTlsMaterial(resolveTlsFiles(tls, dir), null);
  } catch (e) {
    if (!(e instanceof TlsHandshakeError)) throw e;
    problems.push(new ConfigError(file, `endpoints.${id}.tls.${e.field ?? "cert"}`, e.message));
  }
}

/** Where a driver's problem with one of its tags belongs: the drivers word the path "tag '<name>' <field>". */
function tagPlace(config: Config, driverPath: string): { file: string; path: string } | null {
  const m = /^tag '(.+)' ?(.*)$/.exec(driverPath);
  const i = m ? config.tags.findIndex((t) => t.tag === m[1]) : -1;
  return m && i >= 0 ? { file: "variables.yml", path: `tags[${i}]${m[2] ? `.${m[2]}` : ""}` } : null;
}

/** A DriverConfigError as ConfigErrors at their places (each of its problems): variables.yml for a tag, else the driver's entry (values arrive redacted: drivers/validate.ts). */
function driverProblems(config: Config, index: number, e: DriverConfigError): ConfigError[] {
  return [{ path: e.path, message: e.detail }, ...e.also].map((p) => {
    const { file, path } = tagPlace(config, p.path) ?? { file: "drivers.yml", path: `drivers[${index}]${p.path ? `.${p.path}` : ""}` };
    return new ConfigError(join(config.dir, file), path, p.message);
  });
}

/** A Modbus driver on an RTU line: unit ids 1-247 (the driver refuses others at connect, this says it at load). */
function checkRtuUnits(config: Config, id: string, endpoint: string | undefined, defaultUnitId: number, tags: Config["tags"]): void {
  const url = endpoint ? config.endpoints[endpoint]?.url : undefined;
  if (!url || !/^(serial|rtu\+tcp):/.test(url)) return;
  const problem = rtuUnitProblem(defaultUnitId, tags);
  if (problem) throw new DriverConfigError(id, problem.path, problem.message);
}

async function checkDrivers(config: Config, factories: ReadonlyMap<string, DriverFactory>, problems: Problems): Promise<void> {
  const file = join(config.dir, "drivers.yml");
  for (const [i, d] of config.drivers.entries()) {
    if (d.type === "plugin") {
      const endpointUrl = d.endpoint ? config.endpoints[d.endpoint]?.url : undefined;
      await collect(problems, file, `drivers[${i}].plugin`, () => checkPluginDriver(config.dir, config.gateway.plugins.allowUnsigned, { id: d.id, plugin: d.plugin, endpointUrl }));
      continue;
    }
    const factory = factories.get(d.type);
    if (!factory) {
      problems.push(new ConfigError(file, `drivers[${i}].type`, `unknown driver type '${d.type}' (known: ${[...factories.keys()].join(", ")}, plugin)`));
      continue;
    }
    // a fresh instance, never connected: init() parses and validates its config without I/O
    await collect(problems, file, `drivers[${i}].config`, async () => {
      try {
        const tags = config.tags.filter((t) => t.driver === d.id);
        await factory().init({ id: d.id, config: structuredClone(d.config), tags, dataDir: config.gateway.dataDir });
        if (d.type === "modbus") checkRtuUnits(config, d.id, d.endpoint, (d.config as { unitId?: number }).unitId ?? 1, tags);
      } catch (e) {
        if (!(e instanceof DriverConfigError)) throw e;
        problems.push(...driverProblems(config, i, e));
      }
    });
    await checkDecoders(config, i, problems);
  }
}

/** The decoder plugins a driver's mappings name (the MQTT source's `decoder:`) must be there and trusted. */
async function checkDecoders(config: Config, i: number, problems: Problems): Promise<void> {
  const mappings = (config.drivers[i]!.config as { mappings?: unknown }).mappings;
  if (!Array.isArray(mappings)) return;
  for (const [j, m] of mappings.entries()) {
    const name = (m as { decoder?: unknown } | null)?.decoder;
    if (typeof name !== "string") continue;
    await collect(problems, join(config.dir, "drivers.yml"), `drivers[${i}].config.mappings[${j}].decoder`, () => checkDecoderPlugin(config.dir, config.gateway.plugins.allowUnsigned, name));
  }
}

/** The bridges' and auth sections of gateway.yml, validated by their owners' parsers. */
async function checkGatewaySections(config: Config, problems: Problems): Promise<void> {
  const file = join(config.dir, "gateway.yml");
  const g = config.gateway;
  const tags = new Map(config.tags.map((t) => [t.tag, t]));
  await collect(problems, file, "modbusSlave", () => parseModbusSlaveConfig(g.modbusSlave, file, tags));
  if (g.opcua.enabled) await collect(problems, file, "opcua", () => parseOpcuaConfig(g.opcua, file));
  await collect(problems, file, "mqtt", () => parseMqttNorthConfig(g.mqtt, file));
  await collect(problems, file, "nats", () => parseNatsConfig(g.nats, file));
  await collect(problems, file, "auth", () => TokenVerifier.fromConfig(g.auth, config.dir));
}

/** Every problem of a config directory (empty: the gateway would start with it). Never throws. */
export async function checkConfig(dir: string, factories: ReadonlyMap<string, DriverFactory> = builtinDrivers): Promise<{ config?: Config; problems: Problems }> {
  const { config, problems } = readConfig(dir, tagValidators);
  if (!config) return { problems };
  checkEndpoints(config, problems);
  await checkDrivers(config, factories, problems);
  await checkGatewaySections(config, problems);
  return problems.length ? { problems } : { config, problems };
}

/** The config load of the gateway (start, hot reload): every check; throws the first problem (ConfigError). */
export async function loadGatewayConfig(dir: string, factories: ReadonlyMap<string, DriverFactory> = builtinDrivers): Promise<Config> {
  const { config, problems } = await checkConfig(dir, factories);
  if (!config) throw problems[0]!; // no config means at least one problem
  return config;
}
