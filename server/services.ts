// The services the gateway wires, in start order (stopped in reverse). Adding a bridge adds one line.
import type { GatewayContext, Service } from "./context.ts";
import { configWatcher } from "./reload.ts";
import { archiveDirOf, historyService } from "./history.ts";
import { pluginsService } from "./plugins-service.ts";
import { demoPlcService } from "./demo/plc.ts";
import { createModbusSlave } from "../bridges/modbus-slave/index.ts";
import { createOpcuaServer } from "../bridges/opcua-server/index.ts";
import { createMqttNorth, type CommandAuthorizer } from "../bridges/mqtt-north/index.ts";
import { createNatsBridge } from "../bridges/nats/index.ts";
import { createDerivedService } from "../bridges/rules/derived.ts";
import { createRulesService } from "../bridges/rules/scripts.ts";
import { AlarmEngine } from "../bridges/rules/alarms.ts";
import { AuthError, authorizeWrite } from "./auth/index.ts";
import { verifyToken } from "./auth/live.ts";

export type ServiceFactory = (ctx: GatewayContext) => Service | null | Promise<Service | null>;

/** Started before the drivers (things drivers connect to, such as the demo PLC). */
export const earlyServices: ServiceFactory[] = [demoPlcService];

/** Started after the drivers: consumers of the log (bridges). */
export const services: ServiceFactory[] = [
  (ctx) => historyService(ctx),
  // derived tags and windows: idle (reads nothing) while the catalog has none
  (ctx) => createDerivedService({ log: ctx.log, catalog: ctx.catalog, logger: ctx.logger }),
  (ctx) => new AlarmEngine({ log: ctx.log, catalog: ctx.catalog, registry: ctx.metrics.registry, logger: ctx.logger, archiveDir: archiveDirOf(ctx.config.gateway.dataDir) }),
  (ctx) => (ctx.plugins ? pluginsService(ctx.plugins, ctx.config.gateway.plugins.watch, ctx.logger) : null),
  (ctx) => (ctx.config.gateway.watchConfig ? configWatcher(ctx) : null),
  (ctx) => createModbusSlave({ ...ctx, get config() { return ctx.config; }, registry: ctx.metrics.registry }), // getter: the map follows reloads
  (ctx) => (ctx.config.gateway.opcua.enabled ? createOpcuaServer(ctx) : null),
  (ctx) => createMqttNorth({ log: ctx.log, catalog: ctx.catalog, registry: ctx.metrics.registry, logger: ctx.logger, gatewayId: ctx.config.gateway.gatewayId, section: ctx.config.gateway.mqtt, configDir: ctx.config.dir, commands: ctx.commands, ...brokerCommandAuth(ctx) }),
  (ctx) => createNatsBridge({ log: ctx.log, catalog: ctx.catalog, registry: ctx.metrics.registry, logger: ctx.logger, gatewayId: ctx.config.gateway.gatewayId, section: ctx.config.gateway.nats, commands: ctx.commands, ...brokerCommandAuth(ctx) }),
  (ctx) => createRulesService({ log: ctx.log, catalog: ctx.catalog, logger: ctx.logger, configDir: ctx.config.dir, registry: ctx.metrics.registry }),
];

/**
 * Broker commands (MQTT, NATS) checked as REST checks a write: the same live verifier (the keys a reload swaps in for
 * REST are the ones MQTT uses, at the same instant), scope, tenant and tag claims.
 */
function brokerCommandAuth(ctx: GatewayContext): { authorizeCommand: CommandAuthorizer } {
  return {
    authorizeCommand: async (token, target) => {
      const who = await verifyToken(ctx, token);
      if (who instanceof AuthError) return { ok: false, code: who.status === 403 ? "forbidden" : "unauthorized", reason: who.message };
      const denied = authorizeWrite(who, target);
      return denied ? { ok: false, code: "forbidden", reason: denied.message } : { ok: true, sub: who.sub };
    },
  };
}
