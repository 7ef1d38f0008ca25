// The gateway's one verifier, replaced whole when a reload changes the keys: every route, stream and
// bridge asks `authOf(ctx)` at each request, so a removed key or a changed secret stops working the
// moment the reload reports success (the swap is one assignment: a request sees the old keys or the
// new ones, never a mix). Open streams are told ('change') so they re-check their token.
import { EventEmitter } from "node:events";
import type { GatewayContext } from "../context.ts";
import { ConsoleSessions } from "./session.ts";
import { AuthError, TokenVerifier, type Principal } from "./verify.ts";

export class LiveVerifier extends EventEmitter {
  constructor(
    private current: TokenVerifier,
    /** console logins (session.ts): tokens the gateway signs for gateway.yml `console.users` */
    readonly sessions: ConsoleSessions,
  ) {
    super();
    this.setMaxListeners(0); // one listener per open stream
  }

  /** Whether any token can verify: configured keys, or console users (whose tokens the gateway signs). */
  get isConfigured(): boolean {
    return this.current.isConfigured || this.sessions.isEnabled;
  }

  get fingerprint(): string {
    return this.current.fingerprint;
  }

  /** Installs the verifier of a reloaded config; returns whether the key material changed. */
  replace(next: TokenVerifier): boolean {
    const changed = next.fingerprint !== this.current.fingerprint;
    this.current = next;
    if (changed) this.emit("change");
    return changed;
  }

  verify(token: string): Promise<Principal> {
    return this.sessions.owns(token) ? this.sessions.verify(token) : this.current.verify(token);
  }

  verifyHeader(authorization: string | undefined | null): Promise<Principal> {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
    return bearer && this.sessions.owns(bearer) ? this.sessions.verify(bearer) : this.current.verifyHeader(authorization);
  }
}

const byContext = new WeakMap<GatewayContext, LiveVerifier>();

/** The gateway's verifier, built from gateway.yml `auth:` on first use (throws ConfigError on bad key files). */
export function authOf(ctx: GatewayContext): LiveVerifier {
  let live = byContext.get(ctx);
  if (!live) {
    live = new LiveVerifier(TokenVerifier.fromConfig(ctx.config.gateway.auth, ctx.config.dir), new ConsoleSessions(() => ctx.config.gateway.console));
    byContext.set(ctx, live);
  }
  return live;
}

/**
 * Verifies a bare token (no `Bearer `) with the gateway's current keys: the principal, or the AuthError
 * saying why not (never throws for a bad token). For bridges that carry tokens in their own protocol
 * (MQTT commands): same keys, algorithms, lifetime bounds and claims as REST. The caller checks scope
 * and tag with `requireScope` / `authorizeWrite`.
 */
export async function verifyToken(ctx: GatewayContext, token: string): Promise<Principal | AuthError> {
  const live = authOf(ctx);
  if (!live.isConfigured) return new AuthError(401, "invalid_token", "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile) and no console users");
  try {
    return await live.verify(token);
  } catch (e) {
    if (e instanceof AuthError) return e;
    throw e;
  }
}
