// JWT verification (jose) for writes: HS256 with a shared secret, or EdDSA / RS256 with public keys
// from a JWKS file. The accepted algorithms are pinned per key type, so a token cannot choose how it
// is checked: `alg: none` is refused, and an HS256 token is only ever checked against the HS secret
// (never against a public key: the classic HS/RS confusion). Lifetime bounds beyond jose's: an `iat` in
// the future is refused, and `auth.maxTokenLifetimeSec` caps exp - iat.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JSONWebKeySet } from "jose";
import { ConfigError, type GatewayConfig } from "../../schemas/index.ts";

export type AuthConfig = GatewayConfig["auth"];

/** Who is asking, from a verified token. */
export interface Principal {
  sub: string;
  tenant: string;
  scopes: string[];
  /** tag patterns from the `tags` claim; null when the token does not restrict tags */
  tags: string[] | null;
  /** the token's `exp`, epoch seconds: a stream opened with it ends then */
  exp: number;
}

export type AuthErrorCode =
  | "missing_token"
  | "invalid_token"
  | "token_expired"
  | "token_lifetime"
  | "bad_signature"
  | "alg_refused"
  | "insufficient_scope"
  | "forbidden"
  | "unknown_tag";

/**
 * A refusal with its HTTP status: 401 the token is not valid, 403 it is valid but lacks a scope, 404 the
 * tag is not one the token can see (another tenant's tags answer exactly as unknown ones: no enumeration).
 */
export class AuthError extends Error {
  override name = "AuthError";
  constructor(
    readonly status: 401 | 403 | 404,
    readonly code: AuthErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const ASYMMETRIC = ["EdDSA", "RS256"] as const;

type Key = Parameters<typeof jwtVerify>[1];

export class TokenVerifier {
  private constructor(
    private readonly hs: Uint8Array | null,
    private readonly jwks: ReturnType<typeof createLocalJWKSet> | null,
    private readonly cfg: AuthConfig,
    /** a digest of the key material (secret and JWKS): tells a reload whether the keys changed */
    readonly fingerprint: string,
  ) {}

  /** Reads the secret / JWKS files named in gateway.yml `auth:` (relative to the config directory). */
  static fromConfig(cfg: AuthConfig, configDir: string): TokenVerifier {
    const file = join(configDir, "gateway.yml");
    const path = (p: string) => (isAbsolute(p) ? p : join(configDir, p));
    let secret = cfg.hs256Secret || null; // "" (an unset environment variable) means no secret
    if (cfg.hs256SecretFile) {
      try {
        secret = readFileSync(path(cfg.hs256SecretFile), "utf8").trim();
      } catch (e) {
        throw new ConfigError(file, "auth.hs256SecretFile", `cannot read ${path(cfg.hs256SecretFile)}: ${(e as Error).message}`);
      }
      if (secret.length < 32) throw new ConfigError(file, "auth.hs256SecretFile", "the secret must have at least 32 characters");
    }
    let jwks: ReturnType<typeof createLocalJWKSet> | null = null;
    const digest = createHash("sha256").update(JSON.stringify({ secret, issuer: cfg.issuer, audience: cfg.audience, max: cfg.maxTokenLifetimeSec }));
    if (cfg.jwksFile) {
      let set: JSONWebKeySet;
      try {
        set = JSON.parse(readFileSync(path(cfg.jwksFile), "utf8")) as JSONWebKeySet;
      } catch (e) {
        throw new ConfigError(file, "auth.jwksFile", `cannot read a JWKS from ${path(cfg.jwksFile)}: ${(e as Error).message}`);
      }
      if (!Array.isArray(set.keys) || set.keys.length === 0) throw new ConfigError(file, "auth.jwksFile", "the JWKS has no keys");
      for (const [i, k] of set.keys.entries()) {
        if (k.d !== undefined || k.kty === "oct") throw new ConfigError(file, "auth.jwksFile", `keys[${i}] is a private or symmetric key; the JWKS must hold public keys only`);
        if (k.kty !== "RSA" && !(k.kty === "OKP" && k.crv === "Ed25519")) throw new ConfigError(file, "auth.jwksFile", `keys[${i}]: only RSA (RS256) and Ed25519 (EdDSA) keys are accepted, got kty ${k.kty}`);
      }
      jwks = createLocalJWKSet(set);
      digest.update(JSON.stringify(set));
    }
    return new TokenVerifier(secret === null ? null : new TextEncoder().encode(secret), jwks, cfg, digest.digest("hex"));
  }

  get isConfigured(): boolean {
    return this.hs !== null || this.jwks !== null;
  }

  /** Verifies `Authorization: Bearer <jwt>`; throws AuthError (401) when the token is missing or not valid. */
  async verifyHeader(authorization: string | undefined | null): Promise<Principal> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) throw new AuthError(401, "missing_token", "an Authorization: Bearer <JWT> header is required");
    return this.verify(m[1]!);
  }

  async verify(token: string): Promise<Principal> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new AuthError(401, "invalid_token", "the token is not a JWS compact JWT");
    }
    if (!alg || alg.toLowerCase() === "none") throw new AuthError(401, "alg_refused", "unsigned tokens (alg none) are refused");
    let key: Key | ReturnType<typeof createLocalJWKSet>;
    let algorithms: string[];
    if (alg === "HS256") {
      if (!this.hs) throw new AuthError(401, "alg_refused", "HS256 tokens are not accepted by this gateway (no shared secret configured)");
      key = this.hs;
      algorithms = ["HS256"];
    } else if ((ASYMMETRIC as readonly string[]).includes(alg)) {
      if (!this.jwks) throw new AuthError(401, "alg_refused", `${alg} tokens are not accepted by this gateway (no JWKS configured)`);
      key = this.jwks;
      algorithms = [...ASYMMETRIC];
    } else throw new AuthError(401, "alg_refused", `algorithm ${alg} is refused (accepted: HS256, EdDSA, RS256)`);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
        algorithms,
        requiredClaims: ["exp", "sub"],
        clockTolerance: this.cfg.clockToleranceSec,
        ...(this.cfg.issuer ? { issuer: this.cfg.issuer } : {}),
        ...(this.cfg.audience ? { audience: this.cfg.audience } : {}),
      }));
    } catch (e) {
      throw mapJoseError(e);
    }
    checkLifetime(payload, this.cfg);
    return principalOf(payload);
  }
}

/**
 * Bounds jose leaves open: an `iat` in the future (beyond the clock tolerance) is a token minted by a
 * wrong clock or forged to outlive its issuer's policy; with `maxTokenLifetimeSec`, a token living
 * longer (exp - iat, or exp - now without iat) is refused, so `exp` in year 3000 cannot be a key.
 */
function checkLifetime(p: JWTPayload, cfg: AuthConfig): void {
  const now = Math.floor(Date.now() / 1000);
  const exp = p.exp!; // requiredClaims: jose checked it is a number
  if (p.iat !== undefined && p.iat > now + cfg.clockToleranceSec) {
    throw new AuthError(401, "invalid_token", `claim iat: issued ${p.iat - now} s in the future (clock tolerance ${cfg.clockToleranceSec} s)`);
  }
  const max = cfg.maxTokenLifetimeSec;
  if (max === undefined) return;
  const lifetime = exp - (p.iat ?? now);
  if (lifetime > max) throw new AuthError(401, "token_lifetime", `the token lives ${lifetime} s; auth.maxTokenLifetimeSec allows at most ${max} s`);
}

export function mapJoseError(e: unknown): AuthError {
  if (e instanceof errors.JWTExpired) return new AuthError(401, "token_expired", "the token has expired");
  if (e instanceof errors.JWSSignatureVerificationFailed) return new AuthError(401, "bad_signature", "the token's signature does not verify");
  if (e instanceof errors.JWKSNoMatchingKey) return new AuthError(401, "bad_signature", "no key of the JWKS matches the token");
  if (e instanceof errors.JOSEAlgNotAllowed) return new AuthError(401, "alg_refused", "the token's algorithm is refused");
  if (e instanceof errors.JWTClaimValidationFailed) return new AuthError(401, "invalid_token", `claim ${e.claim}: ${e.message}`);
  return new AuthError(401, "invalid_token", `the token is not valid: ${(e as Error).message}`);
}

export function principalOf(p: JWTPayload): Principal {
  if (typeof p.sub !== "string" || !p.sub) throw new AuthError(401, "invalid_token", "claim sub: a non-empty string is required");
  if (typeof p.tenant !== "string" || !p.tenant) throw new AuthError(401, "invalid_token", "claim tenant: a non-empty string is required");
  const scope = p.scope ?? p.scp;
  const scopes = typeof scope === "string" ? scope.split(/\s+/).filter(Boolean) : Array.isArray(scope) ? scope.filter((s): s is string => typeof s === "string") : [];
  let tags: string[] | null = null;
  if (p.tags !== undefined) {
    if (!Array.isArray(p.tags) || !p.tags.every((t) => typeof t === "string")) throw new AuthError(401, "invalid_token", "claim tags: an array of tag patterns is required");
    tags = p.tags as string[];
  }
  return { sub: p.sub, tenant: p.tenant, scopes, tags, exp: p.exp! };
}

/** Tag patterns: `*` matches within one path segment, `**` across segments; anything else literally. */
function patternRegExp(pattern: string): RegExp {
  const re = pattern
    .split("**")
    .map((part) => part.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*"))
    .join(".*");
  return new RegExp(`^${re}$`);
}

export function tagMatches(pattern: string, tag: string): boolean {
  return patternRegExp(pattern).test(tag);
}

/**
 * The test "do these patterns cover a tag", compiled once (for filters run per tag or per frame).
 * null (a token without a `tags` claim) covers every tag; [] covers none.
 */
export function tagMatcher(patterns: readonly string[] | null): (tag: string) => boolean {
  if (patterns === null) return () => true;
  const res = patterns.map(patternRegExp);
  return (tag) => res.some((r) => r.test(tag));
}

/** Whether a token's `tags` claim covers `tag` (null: the token does not restrict tags; []: it covers none). */
export function coversTag(patterns: readonly string[] | null, tag: string): boolean {
  return tagMatcher(patterns)(tag);
}

/** The refusal of a tag a principal cannot see: the same words as for a tag that does not exist. */
export const unknownTag = (name: string) => new AuthError(404, "unknown_tag", `no tag '${name}'`);

/** Whether the principal holds `scope` (403 insufficient_scope when not). */
export function requireScope(p: Principal, scope: "read" | "write"): AuthError | null {
  return p.scopes.includes(scope) ? null : new AuthError(403, "insufficient_scope", `the token has no '${scope}' scope`);
}

/**
 * Whether the principal may write `tag`: write scope, same tenant, tag within its patterns. Another
 * tenant's tag, or one its patterns do not cover, is answered as unknown (404), as a tag that does
 * not exist: a tenant cannot learn the names of others' tags. Callers check the scope before they
 * look the tag up, so the answer to a token without `write` does not depend on the tag either.
 */
export function authorizeWrite(p: Principal, tag: { tag: string; tenant: string }): AuthError | null {
  const denied = requireScope(p, "write");
  if (denied) return denied;
  if (p.tenant !== tag.tenant || !coversTag(p.tags, tag.tag)) return unknownTag(tag.tag);
  return null;
}
