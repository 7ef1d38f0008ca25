// Console logins: tokens the gateway signs itself for the users of gateway.yml `console.users`, with a
// key generated at start (random, in memory only, never logged: a restart ends every console session).
// They are ordinary JWTs to the rest of the API (the same Principal, scopes and tenant), told apart from
// the operator-configured keys by their `kid` header, so the configured HS/JWKS verification is untouched.
// The role gives the scopes: viewer read; operator read write; admin read write admin.
import { randomBytes } from "node:crypto";
import { decodeProtectedHeader, jwtVerify, SignJWT } from "jose";
import type { ConsoleRole, ConsoleUser, GatewayConfig } from "../../schemas/index.ts";
import { AuthError, mapJoseError, principalOf, type Principal } from "./verify.ts";

export const SESSION_KID = "edge-console-session";
export const SESSION_ISSUER = "edge-gateway/console";

export const ROLE_SCOPES: Record<ConsoleRole, string[]> = {
  viewer: ["read"],
  operator: ["read", "write"],
  admin: ["read", "write", "admin"],
};

export interface SessionToken {
  token: string;
  user: string;
  role: ConsoleRole;
  expiresAt: string;
}

export class ConsoleSessions {
  // a private field: the key is not part of any object a logger would print
  readonly #key = new Uint8Array(randomBytes(32));

  /** `consoleConfig()` is read at each call: a reload that changes the users applies at once. */
  constructor(private readonly consoleConfig: () => GatewayConfig["console"]) {}

  /** Whether console users are configured (then the API has a key to check tokens with). */
  get isEnabled(): boolean {
    return this.consoleConfig().users.length > 0;
  }

  user(name: string): ConsoleUser | undefined {
    return this.consoleConfig().users.find((u) => u.name === name);
  }

  async sign(user: ConsoleUser): Promise<SessionToken> {
    const exp = Math.floor(Date.now() / 1000) + this.consoleConfig().sessionTtlSec;
    const claims: Record<string, unknown> = { tenant: user.tenant, scope: ROLE_SCOPES[user.role].join(" "), role: user.role };
    if (user.tags) claims.tags = user.tags;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: SESSION_KID })
      .setIssuer(SESSION_ISSUER)
      .setSubject(user.name)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(this.#key);
    return { token, user: user.name, role: user.role, expiresAt: new Date(exp * 1000).toISOString() };
  }

  /** Whether `token` claims to be a console session (its signature is checked by verify). */
  owns(token: string): boolean {
    try {
      return decodeProtectedHeader(token).kid === SESSION_KID;
    } catch {
      return false;
    }
  }

  /** The principal of a console token; refused when the user was removed or its role changed since. */
  async verify(token: string): Promise<Principal & { role: ConsoleRole }> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.#key, { algorithms: ["HS256"], issuer: SESSION_ISSUER, requiredClaims: ["exp", "sub"] }));
    } catch (e) {
      throw mapJoseError(e);
    }
    const p = principalOf(payload);
    const user = this.user(p.sub);
    if (!user || user.role !== payload.role) throw new AuthError(401, "invalid_token", "the console user was removed or changed since this login: log in again");
    return { ...p, role: user.role };
  }
}
