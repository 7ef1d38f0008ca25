// POST /api/inspect/modbus: reads a raw register range through a configured Modbus driver's own link
// (drivers/modbus/inspect.ts) and answers the registers; the console decodes them in every type and
// byte/word order (schemas/register-views.ts). Needs the `admin` scope: any address of the device can be
// read, past the tags a token's tenant and `tags` claim cover, and it is the integrator's tool for writing
// variables.yml. Polite to the device: one request per driver at a time and at most one every
// INSPECT_MIN_INTERVAL_MS per driver (429 with Retry-After otherwise), bounded by the endpoint's timeout.
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { DriverConfigError, parseEndpointUrl, type Endpoint } from "../../drivers/index.ts";
import { inspectRegisters } from "../../drivers/modbus/inspect.ts";
import { ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError, RtuFrameError } from "../../drivers/modbus/index.ts";
import { authOf, authPlugin } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { authorize, OpsRefusal, refusal } from "./guard.ts";

/** A Modbus read answers at most 125 registers (the PDU's limit). */
export const INSPECT_MAX_COUNT = 125;
/** The least time between two inspections of one driver's device. */
export const INSPECT_MIN_INTERVAL_MS = 250;

const InspectBody = t.Object(
  {
    driver: t.String({ minLength: 1, maxLength: 64, description: "a Modbus driver's id in drivers.yml" }),
    area: t.Union([t.Literal("holding"), t.Literal("input")]),
    address: t.Integer({ minimum: 0, maximum: 65535, description: "zero-based first register" }),
    count: t.Integer({ minimum: 1, maximum: INSPECT_MAX_COUNT }),
    unitId: t.Optional(t.Integer({ minimum: 0, maximum: 255, description: "default: the driver's unitId" })),
  },
  { additionalProperties: false },
);

const InspectAnswer = t.Object({
  driver: t.String(),
  endpoint: t.String({ description: "the endpoint URL read through" }),
  area: t.String(),
  address: t.Integer(),
  unitId: t.Integer(),
  registers: t.Array(t.Integer({ minimum: 0, maximum: 65535 }), { description: "the raw 16-bit registers from `address` on" }),
  durationMs: t.Number(),
});

/** The endpoint of a configured Modbus driver, enabled or not; refusals name the `driver` field. */
function modbusDriver(ctx: GatewayContext, id: string): { config: unknown; endpoint: Endpoint } {
  const entry = ctx.config.drivers.find((d) => d.id === id);
  if (!entry) throw new OpsRefusal(404, "unknown_driver", `no driver '${id}' in drivers.yml`, "driver");
  if (entry.type !== "modbus") throw new OpsRefusal(400, "not_modbus", `driver '${id}' is a ${entry.type} driver; the inspector reads Modbus drivers`, "driver");
  const ep = entry.endpoint ? ctx.config.endpoints[entry.endpoint] : undefined;
  if (!ep) throw new OpsRefusal(400, "no_endpoint", `driver '${id}' has no endpoint`, "driver");
  return { config: entry.config, endpoint: { ...parseEndpointUrl(ep.url), id: entry.endpoint!, timeoutMs: ep.timeoutMs, pool: ctx.pool } };
}

/** The device's failure as an answer: it refused (exception), did not answer, or cannot be reached. */
function deviceRefusal(e: unknown): OpsRefusal {
  if (e instanceof ModbusExceptionError) return new OpsRefusal(502, "device_exception", `the device answered ${e.message}`, e.code === 2 ? "address" : null);
  if (e instanceof ModbusTimeoutError) return new OpsRefusal(504, "device_timeout", `the device did not answer: ${e.message}`);
  if (e instanceof ModbusConnectionError || e instanceof RtuFrameError) return new OpsRefusal(502, "device_unreachable", e.message);
  if (e instanceof DriverConfigError) return new OpsRefusal(400, "driver_config", e.message, "driver");
  throw e;
}

export function inspectApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);
  /** per driver: the time of its last inspection, and whether one is in flight */
  const last = new Map<string, { at: number; busy: boolean }>();
  const admit = (driver: string, set: { headers: Record<string, string | number> }) => {
    const s = last.get(driver) ?? { at: 0, busy: false };
    const waitMs = s.at + INSPECT_MIN_INTERVAL_MS - Date.now();
    if (s.busy || waitMs > 0) {
      set.headers["retry-after"] = String(Math.max(1, Math.ceil(waitMs / 1000)));
      throw new OpsRefusal(429, "too_many_requests", `one inspection of '${driver}' at a time, at most one every ${INSPECT_MIN_INTERVAL_MS} ms: ask again shortly`);
    }
    last.set(driver, { at: Date.now(), busy: true });
    return () => last.set(driver, { at: Date.now(), busy: false });
  };
  return new Elysia({ name: "inspect" }).use(authPlugin(verifier)).post(
    "/api/inspect/modbus",
    async ({ body, set, principal }) => {
      try {
        const who = await authorize(verifier, principal, "admin", "the Modbus inspector");
        const { config, endpoint } = modbusDriver(ctx, body.driver);
        const done = admit(body.driver, set as { headers: Record<string, string | number> });
        try {
          const r = await inspectRegisters(body.driver, config, endpoint, body).catch((e) => {
            throw deviceRefusal(e);
          });
          ctx.logger.info({ driver: body.driver, area: body.area, address: body.address, count: body.count, by: who.sub }, "modbus inspection");
          return { driver: body.driver, endpoint: endpoint.url, area: body.area, address: body.address, ...r };
        } finally {
          done();
        }
      } catch (e) {
        return refusal(set, e);
      }
    },
    {
      body: InspectBody,
      response: { 200: InspectAnswer, ...errorAnswers(400, 401, 403, 404, 429, 502, 504) },
      detail: {
        tags: ["operations"],
        summary: "Read raw registers through a configured Modbus driver's connection (one request, its timeout); needs the 'admin' scope",
        description: "The console shows them decoded in every type and byte/word order (ABCD, CDAB, BADC, DCBA). 429: one inspection per driver at a time, one every 250 ms. 502: the device answered an exception or cannot be reached; 504: it did not answer.",
      },
    },
  );
}
