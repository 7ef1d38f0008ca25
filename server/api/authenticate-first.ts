// Authentication before anything else looks at a request. Elysia checks a route's body, query and params
// against its schema before the handler runs, and the handlers check the token: so a request without a
// token got a 400 that described the route's input (found from outside: `PUT /api/rules/x` with no token
// answered `body source: Expected string`, `POST /api/query` answered `body sql: Expected string`), and
// an unknown route a 404. Here every /api/ request but the public ones shows a token the gateway's keys
// verify (signature, lifetime) before it is parsed, validated or routed: 401 otherwise. The handler
// still checks the scope (403), the tenant and the tags, with the principal verified here (kept per
// request by LiveVerifier.verifyRequest: the signature is checked once). A gateway with no key at all
// leaves it to the routes (the tag catalog is open there, every other route refuses).
import { AuthError, authOf } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { API_DOCS, OPENAPI_JSON } from "./openapi.ts";
import type { ApiError } from "./params.ts";

/** /api/ routes open without a token: the login (it hands tokens out), its renewal (it checks its own console token), the documentation, and the WebSocket stream (its token comes in the query: checked at the upgrade). */
const PUBLIC = new Set(["/api/login", "/api/login/refresh", OPENAPI_JSON, "/api/stream"]);

/** Whether a request must carry a verified token before its route sees it. */
export function needsToken(method: string, pathname: string): boolean {
  if (method === "OPTIONS" || !pathname.startsWith("/api/")) return false;
  return !PUBLIC.has(pathname) && pathname !== API_DOCS && !pathname.startsWith(`${API_DOCS}/`);
}

/** The 401 answer for a request that needs a token and has no valid one; null when it may go on. */
export async function authenticateFirst(ctx: GatewayContext, request: Request): Promise<Response | null> {
  if (!needsToken(request.method, new URL(request.url).pathname)) return null;
  const live = authOf(ctx);
  // without any key each route decides: the tag catalog stays open (the local demo), the rest refuse
  if (!live.isConfigured) return null;
  try {
    await live.verifyRequest(request);
    return null;
  } catch (e) {
    if (!(e instanceof AuthError) || e.status !== 401) throw e;
    return Response.json({ error: e.code, message: e.message, field: null } satisfies ApiError, { status: 401, headers: { "www-authenticate": "Bearer" } });
  }
}
