// Console logins (POST /api/login, /api/login/refresh): users from gateway.yml console.users, tokens the
// gateway signs that the whole API accepts, scopes from the role, the same answer for a wrong password and
// an unknown user, failed attempts limited, and renewal only of a valid console token.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { SignJWT } from "jose";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LoginLimiter } from "../../server/api/login-limiter.ts";
import { reloadConfig } from "../../server/reload.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";

let g: TestGateway;
const hash = (pw: string) => Bun.password.hash(pw, { algorithm: "argon2id" });

beforeAll(async () => {
  const [v, o, a] = await Promise.all([hash("viewer-pw"), hash("operator-pw"), hash("admin-pw")]);
  g = await startGateway({
    "gateway.yml": [
      "console:",
      "  sessionTtlSec: 60",
      "  users:",
      `    - { name: vera, role: viewer, passwordHash: "${v}" }`,
      `    - { name: otto, role: operator, passwordHash: "${o}" }`,
      `    - { name: ada, role: admin, passwordHash: "${a}" }`,
      `    - { name: lock, role: viewer, passwordHash: "${v}" }`,
    ].join("\n"),
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": "tags:\n  - { tag: line1/setpoint, driver: sim, type: float64, access: RW }\n",
  });
});
afterAll(async () => g?.stop());

const login = (user: string, password: string) =>
  fetch(`${g.url}/api/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user, password }) });

async function tokenOf(user: string, password: string): Promise<string> {
  const r = await login(user, password);
  expect(r.status).toBe(200);
  return ((await r.json()) as { token: string }).token;
}

const write = (token: string) =>
  fetch(`${g.url}/api/tags/line1/setpoint`, { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ value: 1 }) });

describe("POST /api/login", () => {
  it("answers a short-lived token for a configured user's password, which the read routes accept", async () => {
    const r = await login("vera", "viewer-pw");
    expect(r.status).toBe(200);
    const body = (await r.json()) as { token: string; user: string; role: string; expiresAt: string };
    expect(body).toMatchObject({ user: "vera", role: "viewer" });
    const lifetime = Date.parse(body.expiresAt) - Date.now();
    expect(lifetime).toBeGreaterThan(50_000);
    expect(lifetime).toBeLessThanOrEqual(60_000);
    const tags = await fetch(`${g.url}/api/tags`, { headers: { authorization: `Bearer ${body.token}` } });
    expect(tags.status).toBe(200);
    // with console users configured the gateway has a key: reads need a token
    expect((await fetch(`${g.url}/api/tags`)).status).toBe(401);
  });

  it("gives a wrong password and an unknown user the same 401 answer", async () => {
    const wrong = await login("otto", "nope");
    const unknown = await login("nobody", "nope");
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(await wrong.json()).toEqual(await unknown.json());
  });

  it("gives scopes by role: a viewer's write is refused 403, an operator's and an admin's pass the scope check", async () => {
    expect((await write(await tokenOf("vera", "viewer-pw"))).status).toBe(403);
    for (const [user, pw] of [["otto", "operator-pw"], ["ada", "admin-pw"]] as const) {
      const r = await write(await tokenOf(user, pw));
      // the driver is disabled: the write is refused for that reason, not for the scope
      expect(r.status).not.toBe(403);
      expect(r.status).not.toBe(401);
    }
  });

  it("refuses further attempts for a user after 5 failures with 429 and Retry-After, even with the right password", async () => {
    for (let i = 0; i < 5; i++) expect((await login("lock", "wrong")).status).toBe(401);
    const r = await login("lock", "viewer-pw");
    expect(r.status).toBe(429);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await r.json()) as { error: string }).error).toBe("too_many_attempts");
  });

  it("refuses an empty user name with 400 naming the field", async () => {
    const r = await login("", "x");
    expect(r.status).toBe(400);
    expect(((await r.json()) as { field: string }).field).toBe("user");
  });
});

describe("POST /api/login/refresh", () => {
  it("renews a valid console token with a later expiry", async () => {
    const first = await (await login("ada", "admin-pw")).json() as { token: string; expiresAt: string };
    await Bun.sleep(1100); // exp has a one-second resolution
    const r = await fetch(`${g.url}/api/login/refresh`, { method: "POST", headers: { authorization: `Bearer ${first.token}` } });
    expect(r.status).toBe(200);
    const next = (await r.json()) as { token: string; expiresAt: string; role: string };
    expect(next.role).toBe("admin");
    expect(Date.parse(next.expiresAt)).toBeGreaterThan(Date.parse(first.expiresAt));
  });

  it("refuses a token signed with another key that claims to be a console session", async () => {
    const forged = await new SignJWT({ tenant: "default", scope: "read write admin", role: "admin" })
      .setProtectedHeader({ alg: "HS256", kid: "edge-console-session" })
      .setIssuer("edge-gateway/console")
      .setSubject("ada")
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode("x".repeat(32)));
    const r = await fetch(`${g.url}/api/login/refresh`, { method: "POST", headers: { authorization: `Bearer ${forged}` } });
    expect(r.status).toBe(401);
    expect((await fetch(`${g.url}/api/tags`, { headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);
  });
});

describe("console users on reload", () => {
  it("lets a user added to gateway.yml log in after the reload, without a restart", async () => {
    const yml = join(g.dir, "config", "gateway.yml");
    const newbie = `    - { name: nina, role: viewer, passwordHash: "${await hash("nina-pw")}" }`;
    expect((await login("nina", "nina-pw")).status).toBe(401);
    // a replacer function: the hash holds `$` sequences (`$1` when its salt starts with a digit) that a replacement string would expand
    writeFileSync(yml, readFileSync(yml, "utf8").replace(/^( {4}- \{ name: ada.*)$/m, (line) => `${line}\n${newbie}`));
    expect(await reloadConfig(g.gw.ctx)).toMatchObject({ ok: true });
    const r = await login("nina", "nina-pw");
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ user: "nina", role: "viewer" });
  });
});

describe("LoginLimiter", () => {
  it("limits one address across user names, and lets a user in again when the window has passed", () => {
    const l = new LoginLimiter({ perUser: 3, perAddress: 4, windowMs: 1000, maxKeys: 100 });
    for (const u of ["a", "b", "c", "d"]) l.failed(u, "10.0.0.1", 0);
    expect(l.retryAfterMs("e", "10.0.0.1", 10)).toBe(990);
    expect(l.retryAfterMs("e", "10.0.0.2", 10)).toBe(0);
    for (let i = 0; i < 3; i++) l.failed("x", "10.0.0.3", 100);
    expect(l.retryAfterMs("x", "10.0.0.9", 500)).toBe(600);
    expect(l.retryAfterMs("x", "10.0.0.9", 1101)).toBe(0);
  });
});

describe("a reload that removes a console user", () => {
  it("ends that user's login at once: its token is refused with 401", async () => {
    const { reloadConfig } = await import("../../server/reload.ts");
    const { readFileSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const tok = await tokenOf("otto", "operator-pw");
    const auth = { authorization: `Bearer ${tok}` };
    expect((await fetch(`${g.url}/api/tags`, { headers: auth })).status).toBe(200);
    const file = join(g.gw.ctx.config.dir, "gateway.yml");
    writeFileSync(file, readFileSync(file, "utf8").replace(/^ {4}- \{ name: otto.*\n/m, ""));
    expect((await reloadConfig(g.gw.ctx)).ok).toBe(true);
    const r = await fetch(`${g.url}/api/tags`, { headers: auth });
    expect(r.status).toBe(401);
    expect(((await r.json()) as { message: string }).message).toContain("removed");
  });
});

describe("open doors", () => {
  it("warns of console logins over plain HTTP beyond loopback, and not on loopback", async () => {
    const { openDoors } = await import("../../server/open-doors.ts");
    const config = g.gw.ctx.config;
    const on = (host: string) => openDoors({ ...config, gateway: { ...config.gateway, http: { host, port: 8080 } } }).map((d) => d.door);
    expect(on("0.0.0.0")).toContain("console_logins_over_http");
    expect(on("127.0.0.1")).not.toContain("console_logins_over_http");
  });
});
