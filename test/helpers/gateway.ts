// An in-process gateway on a temporary config and data directory, with ports chosen by the kernel.
import { join } from "node:path";
import pino from "pino";
import { Gateway } from "../../server/gateway.ts";
import { tempDir, writeConfig } from "./index.ts";
import { closeLeftovers, register } from "./registry.ts";

export interface TestGateway {
  gw: Gateway;
  url: string;
  dir: string;
  stop(): Promise<void>;
}

/**
 * Starts a gateway with the given config files (YAML text). gateway.yml gets dataDir in the temp
 * directory and HTTP on a free port unless the text sets them; OPC UA and the Modbus slave are off
 * unless the test's gateway.yml turns them on. Registered (registry.ts): a gateway whose file ended without
 * stopping it (a timed-out beforeAll) is stopped before later files go on.
 */
export async function startGateway(files: Record<string, string>, opts: { keepDir?: string } = {}): Promise<TestGateway> {
  await closeLeftovers();
  const tmp = opts.keepDir ? { path: opts.keepDir, cleanup() {} } : tempDir();
  const gatewayYml = files["gateway.yml"] ?? "";
  const defaults = [
    /^dataDir:/m.test(gatewayYml) ? "" : `dataDir: ${join(tmp.path, "data")}`,
    /^http:/m.test(gatewayYml) ? "" : "http: { host: 127.0.0.1, port: 0 }",
    /^opcua:/m.test(gatewayYml) ? "" : "opcua: { enabled: false }",
    /^modbusSlave:/m.test(gatewayYml) ? "" : "modbusSlave: { enabled: false }",
  ].filter(Boolean);
  writeConfig(join(tmp.path, "config"), { ...files, "gateway.yml": [gatewayYml, ...defaults].join("\n") + "\n" });
  const starting = Gateway.start({ configDir: join(tmp.path, "config"), logger: pino({ level: process.env.EDGE_LOG_LEVEL ?? "silent" }) });
  const entry = register(`a gateway in ${tmp.path}`, starting, async (gw) => {
    await gw.stop();
    tmp.cleanup();
  });
  const gw = await starting;
  return { gw, url: `http://127.0.0.1:${gw.httpPort}`, dir: tmp.path, stop: () => entry.close() };
}
