// Entry point: `bun server/main.ts [--config <dir>]`. Without a config directory (and without
// EDGE_CONFIG_DIR or ./config) it runs the embedded demo: a simulated plant polled over Modbus TCP.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import pino from "pino";
import { ConfigError } from "../schemas/index.ts";
import { Gateway } from "./gateway.ts";

const logger = pino({ name: "edge", level: process.env.EDGE_LOG_LEVEL ?? "info" });

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

try {
  gateway = await Gateway.start({ configDir: configDir(), logger });
} catch (e) {
  if (e instanceof ConfigError) logger.fatal(`configuration refused: ${e.message}`);
  else logger.fatal({ err: e }, "gateway failed to start");
  process.exit(1);
}
const gw = gateway;
logger.info(`gateway ready: http://localhost:${gw.httpPort}/api/tags`);
// machine-readable line for harnesses that start the gateway as a child process
if (process.env.EDGE_READY_FD === "stdout") console.log(JSON.stringify({ ready: true, http: gw.httpPort }));

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, async () => {
    logger.info({ signal: sig }, "shutting down");
    await gw.stop();
    process.exit(0);
  });
}
