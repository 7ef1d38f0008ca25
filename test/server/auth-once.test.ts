// A request's token is verified once: the API's first hook (server/api/authenticate-first.ts) verifies it
// before routing, and the route's own check (scope, tenant, tags) uses that principal instead of checking
// the signature again. Counted on the verifier's one entry for a JWT (TokenVerifier.verify), per route
// family: each of them had its own way to ask (Elysia's derived principal(), read authorizers, admin
// checks, the console's guard), and a tag path with raw slashes is routed a second time.
import { afterAll, afterEach, beforeAll, describe, expect, it, spyOn } from "bun:test";
import { TokenVerifier } from "../../server/auth/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const TAG = "line1/boiler/temp";
let g: TestGateway;
let auth: Record<string, string>;
let verify: ReturnType<typeof spyOn>;

beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nwatchConfig: false\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": `tags:\n  - { tag: ${TAG}, driver: sim, type: float64, access: RW, tenant: acme }\n`,
  });
  auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read write admin" } })}` };
  verify = spyOn(TokenVerifier.prototype, "verify");
});
afterEach(() => verify.mockClear());
afterAll(async () => {
  verify?.mockRestore();
  await g?.stop();
});

const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const raw = TAG.split("/").join("/"); // raw slashes: folded into one segment and routed again
const requests: [string, string, string, { headers?: Record<string, string>; body?: string }?][] = [
  ["tags (read authorizer)", "GET", "/api/tags"],
  ["tag history, raw slashes (routed twice)", "GET", `/api/tags/${raw}/history`],
  ["setpoint write (derived principal)", "PUT", `/api/tags/${encodeURIComponent(TAG)}`, json({ value: 1 })],
  ["commands", "GET", "/api/commands"],
  ["query", "POST", "/api/query", json({ sql: "SELECT 1" })],
  ["plugins (admin check)", "GET", "/api/plugins"],
  ["rules (read authorizer)", "GET", "/api/rules"],
  ["overview (console guard)", "GET", "/api/overview"],
  ["driver pause (console guard, admin)", "POST", "/api/drivers/sim/pause"],
  ["alarms", "GET", "/api/alarms"],
  ["config files (operations guard)", "GET", "/api/config/files"],
];

describe("a request's token", () => {
  for (const [what, method, path, init] of requests) {
    it(`is verified once: ${what}`, async () => {
      const res = await fetch(`${g.url}${path}`, { method, ...init, headers: { ...auth, ...init?.headers } });
      expect(res.status).toBeLessThan(500);
      expect(res.status).not.toBe(401);
      expect(res.status).not.toBe(403);
      expect(verify).toHaveBeenCalledTimes(1);
    });
  }

  it("is still refused once, with 401, when it does not verify", async () => {
    const res = await fetch(`${g.url}/api/tags`, { headers: { authorization: `Bearer ${auth.authorization!.slice(7, -2)}xx` } });
    expect(res.status).toBe(401);
    expect(verify).toHaveBeenCalledTimes(1);
  });
});
