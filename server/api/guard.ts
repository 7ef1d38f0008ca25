// The refusals shared by the operations routes (config files, Modbus inspector, OPC UA certificates): a
// verified token holding a scope, and one way to turn a refusal into the API's error shape. Without any
// auth key configured these routes are refused: they read the gateway's files or talk to devices.
import { AuthError, type LiveVerifier, type Principal } from "../auth/index.ts";
import type { ApiError } from "./params.ts";

export type Scope = "read" | "write" | "admin";

/** A refusal of an operations route: HTTP status, stable code, message for people, the field at fault. */
export class OpsRefusal extends Error {
  override name = "OpsRefusal";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/** The principal of the request if its token holds `scope` (throws AuthError: 401 no/bad token, 403 no scope). */
export async function authorize(verifier: LiveVerifier, principal: () => Promise<Principal>, scope: Scope, what: string): Promise<Principal> {
  if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", `gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): ${what} is refused`);
  const who = await principal();
  if (!who.scopes.includes(scope)) throw new AuthError(403, "insufficient_scope", `the token has no '${scope}' scope`);
  return who;
}

/** The answer of a refusal (AuthError, OpsRefusal); anything else is rethrown for the API's onError (500). */
export function refusal(set: { status?: number | string }, e: unknown): ApiError {
  if (e instanceof AuthError) return ((set.status = e.status), { error: e.code, message: e.message, field: null });
  if (e instanceof OpsRefusal) return ((set.status = e.status), { error: e.code, message: e.message, field: e.field });
  throw e;
}
