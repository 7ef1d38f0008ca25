// The OpenAPI document: generated from the routes' schemas, served at /api/openapi.json with a page at
// /api/docs, covering every route Elysia registered (the WebSocket as the GET that upgrades), with the
// hand-parsed write body and the error shape { error, message, field? }.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Elysia, t } from "elysia";
import { apiPlugins, createApi } from "../../server/api/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let doc: any;
let auth: Record<string, string>;

beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": "tags:\n  - { tag: line1/boiler/temperature, driver: sim, type: float64, access: RW }\n",
  });
  doc = await (await fetch(`${g.url}/api/openapi.json`)).json();
  auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read write admin", tenant: "default" } })}` };
});
afterAll(async () => g.stop());

/** `/api/tags/:tag` -> `/api/tags/{tag}` (OpenAPI's template syntax). */
const openapiPath = (p: string) => p.replace(/:([^/]+)/g, "{$1}");
const HIDDEN = new Set(["/api/openapi.json", "/api/docs"]);
/** A schema, with a `$ref` to components.schemas followed. */
const resolve = (s: any) => (s?.$ref ? doc.components.schemas[s.$ref.replace("#/components/schemas/", "")] : s);

describe("GET /api/openapi.json", () => {
  it("is an OpenAPI 3 document describing the gateway", () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBe("Edge gateway API");
  });

  it("documents every route the API registers, with its method", () => {
    const routes = createApi(g.gw.ctx).routes.filter((r) => !HIDDEN.has(r.path));
    expect(routes.length).toBeGreaterThan(8);
    const missing = routes
      .map((r) => ({ path: openapiPath(r.path), method: r.method === "WS" ? "get" : r.method.toLowerCase() }))
      .filter(({ path, method }) => !doc.paths[path]?.[method])
      .map(({ path, method }) => `${method} ${path}`);
    expect(missing).toEqual([]);
    // and nothing in the document that is not a route
    const routed = new Set(routes.map((r) => openapiPath(r.path)));
    expect(Object.keys(doc.paths).filter((p) => !routed.has(p))).toEqual([]);
  });

  it("declares every parameter of every path template, and no open route asks for a token", () => {
    const undeclared: string[] = [];
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(ops)) {
        for (const [, name] of path.matchAll(/\{([^}]+)\}/g)) {
          if (!op.parameters?.some((p: any) => p.in === "path" && p.name === name && p.required)) undeclared.push(`${method} ${path} {${name}}`);
        }
      }
    }
    expect(undeclared).toEqual([]);
    for (const open of ["/healthz", "/readyz", "/metrics"]) expect(doc.paths[open].get.security).toEqual([]);
    expect(doc.security).toEqual([{ bearer: [] }]);
  });

  it("describes the WebSocket stream as the GET that upgrades, with its messages", () => {
    const op = doc.paths["/api/stream"].get;
    expect(op.description).toContain("WebSocket");
    expect(op.responses["101"].content["application/json"].schema.anyOf.length).toBe(3);
    expect(op.parameters.map((p: any) => p.name).sort()).toEqual(["from", "tags", "token"]);
  });

  it("gives the write body's schema although the route reads the body by hand", () => {
    const op = doc.paths["/api/tags/{tag}"].put;
    const schema = resolve(op.requestBody.content["application/json"].schema);
    expect(schema.required).toEqual(["value"]);
    expect(Object.keys(schema.properties).sort()).toEqual(["ttlMs", "value"]);
    expect(op.parameters.map((p: any) => `${p.in}:${p.name}`)).toEqual(expect.arrayContaining(["path:tag", "header:idempotency-key"]));
    expect(Object.keys(op.responses).sort()).toEqual(["200", "202", "400", "401", "403", "404", "409", "413", "422", "502", "503", "504"]);
  });

  it("gives query strings and bodies of the read routes", () => {
    expect(resolve(doc.paths["/api/query"].post.requestBody.content["application/json"].schema).required).toEqual(["sql"]);
    const history = doc.paths["/api/tags/{tag}/history"].get.parameters.map((p: any) => `${p.in}:${p.name}`);
    expect(history.sort()).toEqual(["path:tag", "query:agg", "query:from", "query:step", "query:to"]);
    expect(doc.paths["/api/frames"].get.parameters.map((p: any) => p.name).sort()).toEqual(["after", "limit", "tags"]);
  });

  it("gives every /api route an error answer with the shape { error, message, field? }", () => {
    const withoutErrorShape: string[] = [];
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      if (!path.startsWith("/api/") || path === "/api/stream") continue;
      for (const [method, op] of Object.entries<any>(ops)) {
        const errors = Object.entries<any>(op.responses ?? {}).filter(([s]) => Number(s) >= 400);
        const shaped = errors.some(([, r]) => {
          const s = resolve(r.content?.["application/json"]?.schema);
          const objects = (s?.anyOf ?? [s]).map(resolve);
          return objects.some((o: any) => o?.properties?.error && o?.properties?.message && o?.properties?.field && o.required?.includes("error"));
        });
        if (!shaped) withoutErrorShape.push(`${method} ${path}`);
      }
    }
    expect(withoutErrorShape).toEqual([]);
  });

  it("defines each shared schema once in components.schemas and references it everywhere else", () => {
    const text = JSON.stringify(doc);
    expect(text).not.toContain('"$id"');
    const refs = [...text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.filter((name) => !doc.components.schemas[name])).toEqual([]);
    expect(refs.filter((name) => name === "ApiError").length).toBeGreaterThan(10);
  });

  it("gives the success answers' schemas", () => {
    const ok = (path: string, method = "get") => resolve(doc.paths[path][method].responses["200"].content["application/json"].schema);
    expect(resolve(ok("/api/tags").items).properties.quality).toBeDefined();
    expect(ok("/api/tags/{tag}/history").required).toEqual(expect.arrayContaining(["t", "v"]));
    expect(ok("/api/commands/{id}").properties.code).toBeDefined();
    expect(ok("/readyz").properties).toBeDefined();
  });
});

describe("GET /api/docs", () => {
  it("serves a browsable page that loads /api/openapi.json", async () => {
    const r = await fetch(`${g.url}/api/docs`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/html");
    expect(await r.text()).toContain("/api/openapi.json");
  });

  it("lists every operation without the viewer's script, for networks that cannot reach its CDN", async () => {
    const html = await (await fetch(`${g.url}/api/docs`)).text();
    const operations = Object.entries<any>(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(operations.length).toBeGreaterThan(8);
    expect(operations.filter((op) => !html.includes(`<code>${op}</code>`))).toEqual([]);
    // the viewer is pinned to a version and removes the list only once it has loaded
    expect(html).toMatch(/@scalar\/api-reference@\d+\.\d+\.\d+\//);
    expect(html).toContain(`onload="document.getElementById('offline').remove()"`);
  });
});

describe("request validation errors", () => {
  it("answer 400 { error, message, field } naming the input at fault", async () => {
    const r = await fetch(`${g.url}/api/frames?limit=0`, { headers: auth });
    expect(r.status).toBe(400);
    const body = (await r.json()) as any;
    expect(body).toEqual({ error: "invalid_request", message: expect.stringContaining("limit"), field: "limit" });
  });
});

describe("request body validation errors", () => {
  it("answer 400 { error, message, field } naming the body field", async () => {
    const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify({ sql: "" }) });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ error: "invalid_request", message: expect.stringMatching(/^body sql: /), field: "sql" });
  });
});

describe("authentication first", () => {
  // found from outside: without a token, `PUT /api/rules/x` answered "body source: Expected string"
  const asked = [
    { method: "PUT", path: "/api/rules/x", body: `{"bogus": 1}` },
    { method: "POST", path: "/api/query", body: `{"sql": 5}` },
    { method: "POST", path: "/api/query", body: `not json` },
    { method: "GET", path: "/api/frames?limit=0" },
    { method: "PUT", path: "/api/config/files/drivers.yml", body: `{}` },
    { method: "GET", path: "/api/no-such-route" },
  ];
  const ask = (a: (typeof asked)[number], headers: Record<string, string> = {}) =>
    fetch(`${g.url}${a.path}`, { method: a.method, headers: { "content-type": "application/json", ...headers }, ...(a.body ? { body: a.body } : {}) });

  it("answers 401 to a request without a valid token before it reads its body, query or route", async () => {
    const expired = `Bearer ${await token(null, { claims: { scope: "read write admin" }, expiresIn: -600 })}`;
    for (const a of asked) {
      for (const headers of [{}, { authorization: "Bearer not-a-jwt" }, { authorization: expired }] as Record<string, string>[]) {
        const r = await ask(a, headers);
        expect({ ...a, status: r.status }).toEqual({ ...a, status: 401 });
        expect(r.headers.get("www-authenticate")).toBe("Bearer");
        expect(((await r.json()) as { message: string }).message).not.toMatch(/body|Expected|limit|route/);
      }
    }
  });

  it("lets the same requests with a valid token reach their checks (400, 404)", async () => {
    const statuses = await Promise.all(asked.map(async (a) => (await ask(a, auth)).status));
    expect(statuses).toEqual([400, 400, 400, 400, 400, 404]);
  });

  it("keeps the login, the API document and its page open", async () => {
    expect((await fetch(`${g.url}/api/openapi.json`)).status).toBe(200);
    expect((await fetch(`${g.url}/api/docs`)).status).toBe(200);
    // no console users here: refused by the route itself, not by a missing token
    const login = await fetch(`${g.url}/api/login`, { method: "POST", headers: { "content-type": "application/json" }, body: `{"user": "a", "password": "b"}` });
    expect(login.status).not.toBe(404);
    expect(((await login.json()) as { error: string }).error).not.toBe("missing_token");
  });
});

describe("an answer that does not match its documented schema", () => {
  it("is a 500 internal (the gateway's bug), not a 4xx blaming the client", async () => {
    const broken = () => new Elysia().get("/api/broken", () => ({ n: "not a number" }) as never, { response: { 200: t.Object({ n: t.Number() }) } });
    apiPlugins.push(broken);
    try {
      const r = await createApi(g.gw.ctx).handle(new Request("http://localhost/api/broken", { headers: auth }));
      expect(r.status).toBe(500);
      expect(await r.json()).toEqual({ error: "internal", message: "the answer did not match its documented schema", field: null });
    } finally {
      apiPlugins.pop();
    }
  });
});
