// The gateway's one verifier, replaced whole when a reload changes the keys: every route, stream and
// bridge asks `authOf(ctx)` at each request, so a removed key or a changed secret stops working the
// moment the reload reports success (the swap is one assignment: a request sees the old keys or the
// new ones, never a mix). Open streams are told ('change') so they re-check their token. A request's
// Authorization header is verified once (verifyRequest): the API's first hook verifies it, the route's
// checks reuse the result.
import { EventEmitter } from "node:events";
import type { GatewayContext } from "../context.ts";
import { ConsoleSessions } from "./session.ts";
import { AuthError, TokenVerifier, type Principal } from "./verify.ts";

export class LiveVerifier extends EventEmitter {
  /** each request's verification, for its life; dropped whole when the keys change */
  private byRequest = new WeakMap<Request, Promise<Principal>>();

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
    if (changed) {
      // a request verified with the old keys and not yet routed is verified again with the new ones
      this.byRequest = new WeakMap();
      this.emit("change");
    }
    return changed;
  }

  verify(token: string): Promise<Principal> {
    return this.sessions.owns(token) ? this.sessions.verify(token) : this.current.verify(token);
  }

  verifyHeader(authorization: string | undefined | null): Promise<Principal> {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
    return bearer && this.sessions.owns(bearer) ? this.sessions.verify(bearer) : this.current.verifyHeader(authorization);
  }

  /**
   * The principal of a request's Authorization header, verified once per request: the API's first hook
   * (../api/authenticate-first.ts) verifies it before routing, and every check of the route asks again
   * here and gets the same answer (or the same AuthError).
   */
  verifyRequest(request: Request): Promise<Principal> {
    let p = this.byRequest.get(request);
    if (!p) this.byRequest.set(request, (p = this.verifyHeader(request.headers.get("authorization"))));
    return p;
  }

  /** `again`, the request routed a second time (a tag path folded into one segment), keeps `request`'s verification. */
  forward(request: Request, again: Request): void {
    const p = this.byRequest.get(request);
    if (p) this.byRequest.set(again, p);
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
