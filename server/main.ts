// Entry point: `bun server/main.ts [--config <dir>]`. Without a config directory (and without
// EDGE_CONFIG_DIR or ./config) it runs the embedded demo: a simulated plant polled over Modbus TCP.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError } from "../schemas/index.ts";
import { Gateway } from "./gateway.ts";
import { createLogger } from "./logging.ts";
import { handleStopSignals, watchParent } from "./signals.ts";

const USAGE = `usage: npm start -- [--config DIR]      (or: bun server/main.ts [--config DIR])
Starts the gateway with the config directory DIR (default: $EDGE_CONFIG_DIR, else ./config when it has
drivers.yml, else the embedded demo: a simulated plant polled over Modbus TCP).
Environment: EDGE_DATA_DIR, EDGE_HTTP_PORT, EDGE_OPCUA_PORT, EDGE_MODBUS_SLAVE_PORT, EDGE_JWT_SECRET,
EDGE_LOG_LEVEL, EDGE_LOG_FORMAT (json | pretty; default pretty on a terminal, JSON otherwise).
Check a config without starting: npm run edgectl -- check --config DIR`;

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(USAGE);
  process.exit(0);
}

// pretty on a terminal, JSON lines otherwise (EDGE_LOG_FORMAT=json|pretty overrides): see logging.ts
const logger = createLogger({ name: "edge" });

function configDir(): string {
  const i = process.argv.indexOf("--config");
  if (i > 0 && process.argv[i + 1]) return resolve(process.argv[i + 1]!);
  if (process.env.EDGE_CONFIG_DIR) return resolve(process.env.EDGE_CONFIG_DIR);
  if (existsSync("config/drivers.yml")) return resolve("config");
  return join(import.meta.dir, "demo", "config");
}

let gateway: Gateway | undefined;
// The last line of defence: an exception from a device, a plugin or the network is recorded, not fatal.
process.on("uncaughtException", (err) => {
  logger.error({ err }, "uncaught exception (kept running)");
  gateway?.ctx.metrics.processErrors.inc();
});
process.on("unhandledRejection", (err) => {
  logger.error({ err }, "unhandled rejection (kept running)");
  gateway?.ctx.metrics.processErrors.inc();
});

// installed before the start: a Ctrl-C during the start stops cleanly once the start has settled
const starting = Gateway.start({ configDir: configDir(), logger });
const signals = handleStopSignals({
  logger,
  stop: async (reason) => {
    const gw = await starting.catch(() => undefined);
    await gw?.stop(reason);
  },
});
const launcher = Number(process.env.EDGE_STOP_WITH_PARENT);
if (Number.isInteger(launcher) && launcher > 1) watchParent(launcher, () => signals.request("launcher exited"));

try {
  gateway = await starting;
} catch (e) {
  if (e instanceof ConfigError) logger.fatal(`configuration refused: ${e.message}`);
  else logger.fatal({ err: e }, "gateway failed to start");
  process.exit(1);
}
logger.info(`gateway ready: http://localhost:${gateway.httpPort}/api/tags`);
// machine-readable line for harnesses that start the gateway as a child process
if (process.env.EDGE_READY_FD === "stdout") console.log(JSON.stringify({ ready: true, http: gateway.httpPort }));
