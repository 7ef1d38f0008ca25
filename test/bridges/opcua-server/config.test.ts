// The `opcua:` section of gateway.yml: defaults, refusals with their path, hashed passwords.
import { describe, expect, it } from "bun:test";
import { parseOpcuaConfig } from "../../../bridges/opcua-server/config.ts";
import { hashPassword, userManager } from "../../../bridges/opcua-server/security.ts";

describe("opcua config", () => {
  it("fills the defaults: both policies, all modes, no anonymous, port 4840, 20 sessions held 60 s at most", () => {
    const c = parseOpcuaConfig({});
    expect(c).toMatchObject({ port: 4840, allowAnonymous: false, securityPolicies: ["None", "Basic256Sha256"], securityModes: ["None", "Sign", "SignAndEncrypt"], writeTimeoutMs: 10_000 });
    expect(c).toMatchObject({ maxSessions: 20, maxSessionTimeoutMs: 60_000 });
  });

  it("refuses a bad value with the file and the path inside the opcua section", () => {
    expect(() => parseOpcuaConfig({ users: [{ name: "a", passwordHash: "x".repeat(30), rights: ["admin"] }] })).toThrow(/^gateway\.yml at opcua\.users\[0\]\.rights\[0\]/);
    expect(() => parseOpcuaConfig({ securityPolicies: ["Basic128Rsa15"] })).toThrow(/opcua\.securityPolicies\[0\]/);
    expect(() => parseOpcuaConfig({ colour: "red" })).toThrow(/gateway\.yml/);
    expect(() => parseOpcuaConfig({ maxSessionTimeoutMs: 10 })).toThrow(/opcua\.maxSessionTimeoutMs/);
  });

  it("refuses a user given twice", () => {
    const u = { name: "scada", passwordHash: "x".repeat(30) };
    expect(() => parseOpcuaConfig({ users: [u, u] })).toThrow("gateway.yml at opcua.users[1].name: duplicate user 'scada'");
  });

  it("accepts the password whose hash is configured and nothing else", async () => {
    const cfg = parseOpcuaConfig({ users: [{ name: "scada", passwordHash: await hashPassword("s3cret"), rights: ["read", "write"] }] });
    const um = userManager(cfg) as { isValidUserAsync(u: string, p: string, cb: (e: Error | null, ok?: boolean) => void): void };
    const check = (u: string, p: string) => new Promise<boolean | undefined>((r) => um.isValidUserAsync(u, p, (_e, ok) => r(ok)));
    expect(await check("scada", "s3cret")).toBe(true);
    expect(await check("scada", "wrong")).toBe(false);
    expect(await check("nobody", "s3cret")).toBe(false);
  });
});
