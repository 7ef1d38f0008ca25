// The services the gateway wires, in start order (stopped in reverse). Adding a bridge adds one line.
import type { GatewayContext, Service } from "./context.ts";
import { configWatcher } from "./reload.ts";
import { historyService } from "./history.ts";
import { demoPlcService } from "./demo/plc.ts";
import { createModbusSlave } from "../bridges/modbus-slave/index.ts";
import { createOpcuaServer } from "../bridges/opcua-server/index.ts";
import { createMqttNorth, type CommandAuthorizer } from "../bridges/mqtt-north/index.ts";
import { AuthError, authorizeWrite, TokenVerifier } from "./auth/index.ts";

export type ServiceFactory = (ctx: GatewayContext) => Service | null | Promise<Service | null>;

/** Started before the drivers (things drivers connect to, such as the demo PLC). */
export const earlyServices: ServiceFactory[] = [demoPlcService];

/** Started after the drivers: consumers of the log (bridges). */
export const services: ServiceFactory[] = [
  (ctx) => historyService(ctx),
  (ctx) => (ctx.config.gateway.watchConfig ? configWatcher(ctx) : null),
  (ctx) => createModbusSlave({ ...ctx, get config() { return ctx.config; }, registry: ctx.metrics.registry }), // getter: the map follows reloads
  (ctx) => (ctx.config.gateway.opcua.enabled ? createOpcuaServer(ctx) : null),
  (ctx) => createMqttNorth({ log: ctx.log, catalog: ctx.catalog, registry: ctx.metrics.registry, logger: ctx.logger, gatewayId: ctx.config.gateway.gatewayId, section: ctx.config.gateway.mqtt, configDir: ctx.config.dir, commands: ctx.commands, ...mqttCommandAuth(ctx) }),
];

/**
 * MQTT commands checked as REST checks a write: the same verifier (auth:), scope, tenant and tag claims.
 * The verifier is rebuilt when a reload replaced the auth: section, so MQTT follows key changes.
 */
function mqttCommandAuth(ctx: GatewayContext): { authorizeCommand: CommandAuthorizer } {
  let built: { auth: unknown; verifier: TokenVerifier } | null = null;
  const verifier = () => {
    const auth = ctx.config.gateway.auth;
    if (built?.auth !== auth) built = { auth, verifier: TokenVerifier.fromConfig(auth, ctx.config.dir) };
    return built.verifier;
  };
  return {
    authorizeCommand: async (token, target) => {
      try {
        const v = verifier();
        if (!v.isConfigured) return { ok: false, code: "unauthorized", reason: "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): JWT commands are refused" };
        const who = await v.verify(token);
        const denied = authorizeWrite(who, target);
        return denied ? { ok: false, code: "forbidden", reason: denied.message } : { ok: true, sub: who.sub };
      } catch (e) {
        if (e instanceof AuthError) return { ok: false, code: e.status === 403 ? "forbidden" : "unauthorized", reason: e.message };
        throw e;
      }
    },
  };
}
