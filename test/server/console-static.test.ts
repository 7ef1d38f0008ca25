// The console's file route (server/console-static.ts) over a small build directory of its own, and through
// a running gateway: precompressed copies when accepted, immutable caching of hashed assets, the SPA
// fallback, 404 for a missing asset, refusal of `..` in every spelling, and never an API route shadowed.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { serveConsole } from "../../server/console-static.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir } from "../helpers/index.ts";

const dir = tempDir("edge-console-static-");
const build = join(dir.path, "build");
const get = (path: string, headers: Record<string, string> = {}, method = "GET") => serveConsole(new Request(`http://x${path}`, { method, headers }), build);

beforeAll(() => {
  mkdirSync(join(build, "_app", "immutable", "chunks"), { recursive: true });
  writeFileSync(join(build, "200.html"), "<html>fallback</html>");
  writeFileSync(join(build, "index.html"), "<html>overview</html>");
  writeFileSync(join(build, "tags.html"), "<html>tags</html>");
  writeFileSync(join(build, "tags.html.gz"), gzipSync("<html>tags</html>"));
  writeFileSync(join(build, "tags.html.br"), "brotli bytes");
  writeFileSync(join(build, "_app", "immutable", "chunks", "a1b2.js"), "export {}");
  writeFileSync(join(dir.path, "secret.txt"), "outside the build");
});
afterAll(() => dir.cleanup());

describe("serveConsole", () => {
  it("serves a prerendered page by its path with its content type and no-cache", async () => {
    const r = (await get("/tags"))!;
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/html");
    expect(r.headers.get("cache-control")).toBe("no-cache");
    expect(await r.text()).toBe("<html>tags</html>");
    expect(await (await get("/"))!.text()).toBe("<html>overview</html>");
  });

  it("serves the .br copy when br is accepted, else the .gz copy for gzip, with Content-Encoding and Vary", async () => {
    const br = (await get("/tags", { "accept-encoding": "gzip, deflate, br" }))!;
    expect(br.headers.get("content-encoding")).toBe("br");
    expect(br.headers.get("vary")).toBe("accept-encoding");
    const gz = (await get("/tags", { "accept-encoding": "gzip" }))!;
    expect(gz.headers.get("content-encoding")).toBe("gzip");
    expect(gz.headers.get("content-type")).toContain("text/html");
    const refused = (await get("/tags", { "accept-encoding": "br;q=0, gzip;q=0" }))!;
    expect(refused.headers.get("content-encoding")).toBeNull();
  });

  it("marks hashed assets under _app/immutable immutable, with a JavaScript content type", async () => {
    const r = (await get("/_app/immutable/chunks/a1b2.js"))!;
    expect(r.status).toBe(200);
    expect(r.headers.get("cache-control")).toContain("immutable");
    expect(r.headers.get("content-type")).toContain("javascript");
  });

  it("answers the fallback page for an unknown client-side route, and 404 for a missing asset", async () => {
    const page = (await get("/tags/line1/boiler/temperature"))!;
    expect(page.status).toBe(200);
    expect(await page.text()).toBe("<html>fallback</html>");
    // a tag name with a dot is a route, not a missing file
    expect(await (await get("/tags/line1/meter.kwh"))!.text()).toBe("<html>fallback</html>");
    expect((await get("/_app/immutable/chunks/gone.js"))!.status).toBe(404);
    expect((await get("/favicon.png"))!.status).toBe(404);
  });

  it("refuses '..' written raw, percent-encoded or with an encoded slash, and a backslash", async () => {
    for (const path of ["/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/_app%2f..%2f..%2fsecret.txt", "/..%5csecret.txt", "/x/%2e%2e%2f%2e%2e%2fsecret.txt"]) {
      const r = (await get(path))!;
      expect({ path, status: r.status }).toEqual({ path, status: 400 });
      expect(await r.text()).not.toContain("outside the build");
    }
    // whole `%2E%2E` segments are resolved by URL parsing itself, inside the build: nothing outside is reached
    const resolved = (await get("/_app/%2E%2E/%2E%2E/secret.txt"))!;
    expect(resolved.status).toBe(404);
    expect(await resolved.text()).not.toContain("outside the build");
  });

  it("leaves API paths, other methods and bad percent-encoding to the caller or a 400", async () => {
    expect(await get("/api/nope")).toBeNull();
    expect(await get("/metrics")).toBeNull();
    expect(await get("/tags", {}, "POST")).toBeNull();
    expect((await get("/%E0%A4%A"))!.status).toBe(400);
  });

  it("answers HEAD with the headers and no body", async () => {
    const r = (await get("/tags", {}, "HEAD"))!;
    expect(r.status).toBe(200);
    expect(r.headers.get("content-length")).toBe(String("<html>tags</html>".length));
    expect(await r.text()).toBe("");
  });

  it("says how to build the console when there is no build", async () => {
    const r = (await serveConsole(new Request("http://x/"), join(dir.path, "nothing")))!;
    expect(r.status).toBe(503);
    expect(await r.text()).toContain("console/build.mjs");
  });
});

describe("the gateway with the console", () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startGateway({
      "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
      "variables.yml": "tags:\n  - { tag: a, driver: sim, type: float64 }\n",
    });
  });
  afterAll(async () => g?.stop());

  it("keeps the API's JSON 404 for an unknown /api path and its routes untouched", async () => {
    const r = await fetch(`${g.url}/api/nope`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: string }).error).toBe("not_found");
    expect((await fetch(`${g.url}/healthz`)).headers.get("content-type")).toContain("json");
  });

  it("answers a login on a gateway without console users with what to configure", async () => {
    const r = await fetch(`${g.url}/api/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user: "admin", password: "admin" }) });
    expect(r.status).toBe(401);
    const body = (await r.json()) as { error: string; message: string };
    expect(body.error).toBe("no_console_users");
    expect(body.message).toContain("console.users");
  });

  it("answers / with the console (or, without a build, the way to build it), never a JSON 404", async () => {
    const r = await fetch(`${g.url}/`);
    expect([200, 503]).toContain(r.status);
    expect(r.headers.get("content-type")).not.toContain("json");
  });
});
