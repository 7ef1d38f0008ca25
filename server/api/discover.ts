// POST /api/discover/opcua and /api/discover/modbus: the discovery of `edgectl discover` run by the
// gateway (for the console's "discover" action on a device), answering the drafted files as JSON
// instead of writing them. Needs the `admin` scope: it makes the gateway connect wherever it is told.
// Bounded in time (timeoutMs, at most 60 s) and one discovery at a time (409 while one runs), so that
// neither the gateway nor a device is flooded.
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { AuthError, authOf, authPlugin, type Principal } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { DiscoverError, DiscoverOptionError } from "../discover/files.ts";
import { discoverModbus, parseUnits } from "../discover/modbus.ts";
import { discoverOpcua } from "../discover/opcua.ts";

/** The longest a discovery may run through the API. */
export const DISCOVER_API_MAX_MS = 60_000;

const TimeoutMs = t.Optional(t.Integer({ minimum: 100, maximum: DISCOVER_API_MAX_MS, description: "the whole discovery, at most (default 20000)" }));
const DriverId = t.Optional(t.String({ pattern: "^[A-Za-z0-9_.-]+$", maxLength: 64, description: "driver and endpoint id in the files" }));

const OpcuaRequest = t.Object(
  {
    url: t.String({ pattern: "^opc\\.tcp://", description: "opc.tcp://host:port/path" }),
    driverId: DriverId,
    maxDepth: t.Optional(t.Integer({ minimum: 1, maximum: 20 })),
    maxNodes: t.Optional(t.Integer({ minimum: 1, maximum: 20_000 })),
    timeoutMs: TimeoutMs,
    startNodeId: t.Optional(t.String()),
    securityPolicy: t.Optional(t.Union([t.Literal("None"), t.Literal("Basic256Sha256")])),
    securityMode: t.Optional(t.Union([t.Literal("None"), t.Literal("Sign"), t.Literal("SignAndEncrypt")])),
    user: t.Optional(t.Object({ name: t.String({ minLength: 1 }), password: t.Optional(t.String()), passwordEnv: t.Optional(t.String()) }, { additionalProperties: false })),
    trustServerCertificate: t.Optional(t.Boolean()),
  },
  { additionalProperties: false },
);

const ModbusRequest = t.Object(
  {
    // any scheme passes here: discoverModbus refuses an RTU line (serial://, rtu+tcp://) saying why and what to use instead
    url: t.String({ pattern: "^[a-z][a-z0-9+.-]*://", description: "tcp://host:port (RTU lines are probed by `edgectl discover modbus` while no gateway polls them)" }),
    units: t.String({ description: "unit ids to probe: 1-10,12" }),
    areas: t.Optional(t.Array(t.Union([t.Literal("holding"), t.Literal("input")]), { minItems: 1 })),
    maxAddress: t.Optional(t.Integer({ minimum: 0, maximum: 65535 })),
    blockSize: t.Optional(t.Integer({ minimum: 1, maximum: 125 })),
    rate: t.Optional(t.Number({ exclusiveMinimum: 0, maximum: 1000, description: "requests per second, at most (default 20)" })),
    requestTimeoutMs: t.Optional(t.Integer({ minimum: 1, maximum: 10_000, description: "per request (default 1000)" })),
    maxRequests: t.Optional(t.Integer({ minimum: 1, maximum: 100_000 })),
    timeoutMs: TimeoutMs,
    driverId: DriverId,
  },
  { additionalProperties: false },
);

const Files = t.Object(
  { "endpoints.yml": t.String(), "drivers.yml": t.String(), "variables.yml": t.String() },
  { description: "the drafted files' text, as `edgectl discover` writes them" },
);

const OpcuaAnswer = t.Object({
  files: Files,
  tags: t.Integer(),
  browsed: t.Integer(),
  truncated: t.Boolean({ description: "maxDepth or maxNodes cut the browse" }),
  skipped: t.Array(t.Object({ path: t.String(), nodeId: t.String(), reason: t.String() })),
});

const ModbusAnswer = t.Object({
  files: Files,
  tags: t.Integer(),
  requests: t.Integer(),
  truncated: t.Boolean({ description: "the request budget or the time limit cut the probe" }),
  units: t.Array(
    t.Object({
      unitId: t.Integer(),
      answered: t.Boolean(),
      reason: t.Optional(t.String()),
      ranges: t.Array(t.Object({ area: t.String(), start: t.Integer(), end: t.Integer() })),
    }),
  ),
});

const DEFAULT_TIMEOUT_MS = 20_000;

export function discoverApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);
  let running = false;
  const authorize = async (principal: () => Promise<Principal>) => {
    if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): discovery is refused");
    const p = await principal();
    if (!p.scopes.includes("admin")) throw new AuthError(403, "insufficient_scope", "the token has no 'admin' scope");
    return p;
  };
  /** Authorizes, runs one discovery at a time, and turns its refusals into answers. */
  const run = async <T>(principal: () => Promise<Principal>, set: { status?: number | string }, what: string, work: () => Promise<T>) => {
    try {
      const who = await authorize(principal);
      if (running) return ((set.status = 409), { error: "discovery_running", message: "a discovery is running; ask again when it has finished", field: null });
      running = true;
      try {
        const result = await work();
        ctx.logger.info({ what, by: who.sub }, "discovery done");
        return result;
      } finally {
        running = false;
      }
    } catch (e) {
      if (e instanceof AuthError) return ((set.status = e.status), { error: e.code, message: e.message, field: null });
      if (e instanceof DiscoverOptionError) return ((set.status = 400), { error: "invalid_request", message: e.message, field: e.field ?? null });
      if (e instanceof DiscoverError) return ((set.status = 502), { error: "discovery_failed", message: e.message, field: null });
      throw e;
    }
  };
  const detail = (summary: string) => ({ tags: ["operations"], summary });
  return new Elysia({ name: "discover" })
    .use(authPlugin(verifier))
    .post(
      "/api/discover/opcua",
      async ({ body, set, principal }) =>
        run(principal, set, `opcua ${body.url}`, () => discoverOpcua({ ...body, timeoutMs: body.timeoutMs ?? DEFAULT_TIMEOUT_MS, dataDir: ctx.config.gateway.dataDir })),
      {
        body: OpcuaRequest,
        response: { 200: OpcuaAnswer, ...errorAnswers(400, 401, 403, 409, 502) },
        detail: detail("Browse an OPC UA server and answer the drafted endpoints.yml, drivers.yml and variables.yml; needs the 'admin' scope"),
      },
    )
    .post(
      "/api/discover/modbus",
      async ({ body, set, principal }) =>
        run(principal, set, `modbus ${body.url}`, () => {
          const { units, requestTimeoutMs, timeoutMs, ...rest } = body;
          return discoverModbus({ ...rest, units: parseUnits(units, "units"), timeoutMs: requestTimeoutMs, signal: AbortSignal.timeout(timeoutMs ?? DEFAULT_TIMEOUT_MS), serialLines: false });
        }),
      {
        body: ModbusRequest,
        response: { 200: ModbusAnswer, ...errorAnswers(400, 401, 403, 409, 502) },
        detail: detail("Probe a Modbus TCP device's units and readable registers (one request at a time) and answer the drafted files; needs the 'admin' scope"),
      },
    );
}
