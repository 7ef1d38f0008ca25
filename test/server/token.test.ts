// `npm run token`: an operator mints a token the gateway accepts; the demo takes its secret from the environment.
import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { loadConfig } from "../../server/config.ts";
import { startGateway } from "../helpers/gateway.ts";

const SECRET = "a-demo-secret-of-at-least-32-characters!";
const mint = (...args: string[]) => Bun.spawnSync([process.execPath, join(import.meta.dir, "..", "..", "server", "token.ts"), ...args], { env: { ...process.env, EDGE_JWT_SECRET: "" } });

describe("token tool", () => {
  it("mints a token that the gateway accepts for SQL, with the claims asked for", async () => {
    const r = mint("--secret", SECRET, "--sub", "alice", "--tenant", "default", "--scope", "read", "--tags", "a/**");
    expect(r.exitCode).toBe(0);
    const token = r.stdout.toString().trim();
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    expect(claims).toMatchObject({ sub: "alice", tenant: "default", scope: "read", tags: ["a/**"] });
    expect(claims.exp - claims.iat).toBe(3600);
    const t = await startGateway({
      "gateway.yml": `auth: { hs256Secret: "${SECRET}" }`,
      "drivers.yml": `drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 50 } }\n`,
      "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
    });
    try {
      const ask = (auth: string) =>
        fetch(`${t.url}/api/query`, { method: "POST", headers: { authorization: auth, "content-type": "application/json" }, body: JSON.stringify({ sql: "SELECT count(*) AS n FROM tags" }) });
      const ok = await ask(`Bearer ${token}`);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { rows: unknown[][] }).rows).toEqual([[1]]);
      const other = mint("--secret", "another-secret-of-at-least-32-characters").stdout.toString().trim();
      expect((await ask(`Bearer ${other}`)).status).toBe(401);
    } finally {
      await t.stop();
    }
  });

  it("refuses to mint without a secret of at least 32 characters, saying so", () => {
    const r = mint("--sub", "alice");
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain("EDGE_JWT_SECRET");
  });

  it("lets the demo take its secret from EDGE_JWT_SECRET, and run without one", () => {
    const demo = join(import.meta.dir, "..", "..", "server", "demo", "config");
    const before = process.env.EDGE_JWT_SECRET;
    try {
      delete process.env.EDGE_JWT_SECRET;
      expect(loadConfig(demo).gateway.auth.hs256Secret).toBe("");
      process.env.EDGE_JWT_SECRET = SECRET;
      expect(loadConfig(demo).gateway.auth.hs256Secret).toBe(SECRET);
      process.env.EDGE_JWT_SECRET = "short";
      expect(() => loadConfig(demo)).toThrow("gateway.yml at auth.hs256Secret");
    } finally {
      if (before === undefined) delete process.env.EDGE_JWT_SECRET;
      else process.env.EDGE_JWT_SECRET = before;
    }
  });
});
