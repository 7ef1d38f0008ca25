// The config files over HTTP on a running gateway: read with secrets redacted, an edit checked by the
// gateway's own config load (file and path of every problem, diff against the running file), and written
// only when it passes: a refused edit changes nothing on disk or in the gateway, a good one applies by
// hot reload. Admin scope only.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let configDir = "";
const VARIABLES = "tags:\n  - { tag: line/a, driver: sim1, type: float64 }\n";

beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": "auth: { hs256SecretFile: secret.txt }\nwatchConfig: false\n",
    "secret.txt": HS_SECRET,
    "endpoints.yml": 'endpoints:\n  up: { url: "mqtt://edge:hunter2@127.0.0.1:1883" }\n',
    "drivers.yml": "drivers:\n  - { id: sim1, type: simulator, config: { intervalMs: 50 } }\n",
    "variables.yml": VARIABLES,
  });
  configDir = join(g.dir, "config");
}, 30_000);
afterAll(async () => g?.stop());

const call = async (method: string, path: string, body?: unknown, scope = "admin") => {
  const r = await fetch(`${g.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${await token(null, { claims: { scope } })}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: (await r.json()) as any };
};
const onDisk = (name: string) => readFileSync(join(configDir, name), "utf8");

describe("GET /api/config/files", () => {
  it("answers every config file's text with the password of a URL redacted", async () => {
    const r = await call("GET", "/api/config/files");
    expect(r.status).toBe(200);
    expect(r.body.files.map((f: { name: string }) => f.name)).toEqual(["gateway.yml", "endpoints.yml", "drivers.yml", "variables.yml"]);
    const endpoints = r.body.files.find((f: { name: string }) => f.name === "endpoints.yml");
    expect(endpoints).toMatchObject({ exists: true, redacted: true });
    expect(endpoints.text).toContain("mqtt://edge:[redacted]@127.0.0.1");
    expect(JSON.stringify(r.body)).not.toContain("hunter2");
    expect(r.body.files.find((f: { name: string }) => f.name === "variables.yml")).toMatchObject({ text: VARIABLES, redacted: false });
  });

  it("refuses every config route to a token without the admin scope", async () => {
    expect((await call("GET", "/api/config/files", undefined, "read write")).status).toBe(403);
    expect((await call("POST", "/api/config/check", { file: "variables.yml", text: VARIABLES }, "read write")).status).toBe(403);
    expect((await call("PUT", "/api/config/files/variables.yml", { text: VARIABLES }, "read write")).status).toBe(403);
  });
});

describe("POST /api/config/check", () => {
  it("names the file and path of every problem of an edit and shows its diff, writing nothing", async () => {
    const text = "tags:\n  - { tag: line/a, driver: sim1, type: float64 }\n  - { tag: line/b, driver: nope, type: float64 }\n  - { tag: line/c, driver: sim1, type: decimal }\n";
    const r = await call("POST", "/api/config/check", { file: "variables.yml", text });
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(false);
    expect(r.body.problems).toContainEqual({ file: "variables.yml", path: "tags[2].type", message: expect.stringContaining("Expected one of") });
    expect(r.body.diff).toContain("+  - { tag: line/b, driver: nope, type: float64 }");
    expect(r.body.diff).toStartWith("--- a/variables.yml\n+++ b/variables.yml\n@@ -1,2 +1,4 @@\n");
    expect(onDisk("variables.yml")).toBe(VARIABLES);
  });

  it("resolves the other files' references as the gateway does (the secret file beside gateway.yml)", async () => {
    expect((await call("POST", "/api/config/check", { file: "gateway.yml", text: "auth: { hs256SecretFile: secret.txt }\nwatchConfig: false\n" })).body).toMatchObject({ ok: true, problems: [] });
    const missing = await call("POST", "/api/config/check", { file: "gateway.yml", text: "auth: { hs256SecretFile: gone.txt }\n" });
    expect(missing.body.problems).toEqual([{ file: "gateway.yml", path: "auth.hs256SecretFile", message: expect.stringContaining(join(configDir, "gone.txt")) }]);
  });

  it("points a YAML syntax error at its line and column", async () => {
    const r = await call("POST", "/api/config/check", { file: "drivers.yml", text: "drivers:\n  - { id: sim1, type: simulator\n" });
    expect(r.body.problems[0]).toMatchObject({ file: "drivers.yml", path: expect.stringMatching(/^line \d+, column \d+$/) });
  });

  it("refuses an edit still holding a redacted secret, naming the text", async () => {
    const shown = (await call("GET", "/api/config/files")).body.files.find((f: { name: string }) => f.name === "endpoints.yml").text;
    expect(await call("POST", "/api/config/check", { file: "endpoints.yml", text: shown })).toMatchObject({ status: 400, body: { error: "redacted_secret", field: "text" } });
    expect(await call("PUT", "/api/config/files/endpoints.yml", { text: shown })).toMatchObject({ status: 400, body: { error: "redacted_secret", field: "text" } });
    expect(onDisk("endpoints.yml")).toContain("hunter2");
  });
});

describe("PUT /api/config/files/:name", () => {
  it("refuses a bad edit with 422 naming file and path, changing nothing on disk or in the gateway", async () => {
    const r = await call("PUT", "/api/config/files/variables.yml", { text: "tags:\n  - { tag: line/a, driver: nope, type: float64 }\n" });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ error: "config_refused", field: "text", ok: false, problems: [{ file: "variables.yml", path: "tags[0].driver" }] });
    expect(r.body.message).toBe("variables.yml at tags[0].driver: unknown driver 'nope'");
    expect(r.body.reload).toBeUndefined();
    expect(onDisk("variables.yml")).toBe(VARIABLES);
    expect(g.gw.ctx.catalog.get("line/a")?.driver).toBe("sim1");
  });

  it("writes a good edit and applies it by hot reload: the new tag is in the catalog", async () => {
    const text = `${VARIABLES}  - { tag: line/b, driver: sim1, type: float64, unit: bar }\n`;
    const r = await call("PUT", "/api/config/files/variables.yml", { text });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true, problems: [], reload: { ok: true, tags: 2, driversRestarted: ["sim1"] } });
    expect(r.body.diff).toContain("+  - { tag: line/b, driver: sim1, type: float64, unit: bar }");
    expect(onDisk("variables.yml")).toBe(text);
    expect(g.gw.ctx.catalog.get("line/b")?.unit).toBe("bar");
  });

  it("says when gateway.yml on disk holds settings that apply only after a restart, until the restart", async () => {
    expect((await call("PUT", "/api/config/files/variables.yml", { text: onDisk("variables.yml") })).body.reload.restartNeeded).toBe(false);
    const running = onDisk("gateway.yml");
    const r = await call("PUT", "/api/config/files/gateway.yml", { text: running.replace("watchConfig: false", "watchConfig: false\nhealth: { commitStallSeconds: 7 }") });
    expect(r).toMatchObject({ status: 200, body: { ok: true, reload: { ok: true, restartNeeded: true } } });
    // which setting waits, by its path (the log said "ports, data directory and log tuning" whatever had changed)
    expect(r.body.reload.restartPaths).toEqual(["health.commitStallSeconds"]);
    const again = (await call("PUT", "/api/config/files/variables.yml", { text: onDisk("variables.yml") })).body.reload;
    expect(again).toMatchObject({ restartNeeded: true, restartPaths: ["health.commitStallSeconds"] });
  });

  it("answers 404 for a file that is not a config file, and never writes outside the config directory", async () => {
    expect(await call("PUT", "/api/config/files/secret.txt", { text: "x" })).toMatchObject({ status: 404, body: { error: "unknown_file", field: "name" } });
    expect((await call("PUT", `/api/config/files/${encodeURIComponent("../variables.yml")}`, { text: "x" })).status).toBe(404);
    expect(onDisk("secret.txt")).toBe(HS_SECRET);
  });
});
