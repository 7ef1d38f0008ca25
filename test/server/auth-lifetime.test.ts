// Token lifetime bounds: with auth.maxTokenLifetimeSec a token living longer (exp - iat, or exp - now
// without iat) is refused, so `exp` in year 3000 is no key; an `iat` in the future beyond the clock
// tolerance is refused whether or not a bound is set.
import { describe, expect, it } from "bun:test";
import { SignJWT } from "jose";
import { AuthError, TokenVerifier, type AuthConfig } from "../../server/auth/index.ts";
import { startGateway } from "../helpers/gateway.ts";
import { HS_SECRET } from "./commands-fixture.ts";

const now = () => Math.floor(Date.now() / 1000);
const YEAR_3000 = Math.floor(Date.UTC(3000, 0, 1) / 1000);

async function sign(claims: { iat?: number; exp: number }): Promise<string> {
  const jwt = new SignJWT({ tenant: "acme", scope: "read" }).setProtectedHeader({ alg: "HS256" }).setSubject("alice").setExpirationTime(claims.exp);
  if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
  return jwt.sign(new TextEncoder().encode(HS_SECRET));
}

const verifier = (extra: Partial<AuthConfig> = {}) => TokenVerifier.fromConfig({ hs256Secret: HS_SECRET, clockToleranceSec: 30, ...extra }, "/nonexistent");

/** The refusal's code, or "accepted". */
async function answer(v: TokenVerifier, tok: string): Promise<string> {
  try {
    await v.verify(tok);
    return "accepted";
  } catch (e) {
    if (e instanceof AuthError) return e.code;
    throw e;
  }
}

describe("auth.maxTokenLifetimeSec", () => {
  const bounded = verifier({ maxTokenLifetimeSec: 3600 });

  it("refuses a token whose exp is in year 3000", async () => {
    expect(await answer(bounded, await sign({ iat: now(), exp: YEAR_3000 }))).toBe("token_lifetime");
    expect(await answer(bounded, await sign({ exp: YEAR_3000 }))).toBe("token_lifetime");
  });

  it("refuses a token whose exp - iat is over the bound, even when little of it is left", async () => {
    expect(await answer(bounded, await sign({ iat: now() - 7000, exp: now() + 300 }))).toBe("token_lifetime");
  });

  it("refuses a token without iat whose exp is further than the bound from now", async () => {
    expect(await answer(bounded, await sign({ exp: now() + 3700 }))).toBe("token_lifetime");
  });

  it("accepts tokens within the bound, with and without iat", async () => {
    expect(await answer(bounded, await sign({ iat: now(), exp: now() + 3600 }))).toBe("accepted");
    expect(await answer(bounded, await sign({ exp: now() + 3000 }))).toBe("accepted");
  });

  it("leaves the lifetime unbounded when unset (as before)", async () => {
    expect(await answer(verifier(), await sign({ iat: now(), exp: YEAR_3000 }))).toBe("accepted");
  });
});

describe("iat in the future", () => {
  it("refuses an iat a day in the future, bound or not", async () => {
    const tok = await sign({ iat: now() + 86_400, exp: now() + 86_400 + 60 });
    expect(await answer(verifier(), tok)).toBe("invalid_token");
    expect(await answer(verifier({ maxTokenLifetimeSec: 3600 }), tok)).toBe("invalid_token");
  });

  it("accepts an iat ahead by less than the clock tolerance (an issuer's clock a little fast)", async () => {
    expect(await answer(verifier(), await sign({ iat: now() + 20, exp: now() + 600 }))).toBe("accepted");
    expect(await answer(verifier(), await sign({ iat: now() + 40, exp: now() + 600 }))).toBe("invalid_token");
  });
});

describe("the bound on the API", () => {
  it("answers 401 token_lifetime to a year-3000 token when gateway.yml sets auth.maxTokenLifetimeSec", async () => {
    const g = await startGateway({
      "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}", maxTokenLifetimeSec: 3600 }\nwatchConfig: false\n`,
      "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
      "variables.yml": "tags:\n  - { tag: a, driver: sim, type: float64 }\n",
    });
    try {
      const get = async (tok: string) => (await fetch(`${g.url}/api/commands`, { headers: { authorization: `Bearer ${tok}` } })).status;
      const r = await fetch(`${g.url}/api/tags`, { headers: { authorization: `Bearer ${await sign({ iat: now(), exp: YEAR_3000 })}` } });
      expect(r.status).toBe(401);
      expect(await r.json()).toMatchObject({ error: "token_lifetime", message: expect.stringContaining("auth.maxTokenLifetimeSec") });
      expect(await get(await sign({ iat: now(), exp: now() + 600 }))).toBe(200);
    } finally {
      await g.stop();
    }
  });
});
