// Every route against a table of bad inputs (query strings, path parameters, bodies, WebSocket
// parameters): each answer is a 4xx JSON error in one shape, { error, message, field }, naming the field,
// never a 500, a pretty-printed schema dump or DuckDB's parser text.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let auth: Record<string, string>;

beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": "tags:\n  - { tag: a, driver: sim, type: float64, access: RW, tenant: acme }\n",
  });
  auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read write", tenant: "acme" } })}` };
  await g.gw.ctx.log.append([{ kind: "data", tag: "a", value: 1, ts: Date.now() * 1000, quality: 0, source: "sim" }]);
}, 30_000);

afterAll(async () => {
  await g?.stop();
});

interface Case {
  method?: "GET" | "POST" | "PUT";
  path: string;
  /** a JSON value, or a string sent as is */
  body?: unknown;
  field: string;
}

/** A WebSocket handshake's request headers: the stream route answers nothing else */
const UPGRADE = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" };
const json = (body: unknown) => (typeof body === "string" ? body : JSON.stringify(body));
const history = (q: string) => `/api/tags/a/history?${q}`;

const CASES: Case[] = [
  // GET /api/commands
  { path: "/api/commands?since=1e308", field: "since" },
  { path: "/api/commands?since=yesterday", field: "since" },
  { path: "/api/commands?since=-5", field: "since" },
  { path: "/api/commands?limit=-5", field: "limit" },
  { path: "/api/commands?limit=abc", field: "limit" },
  { path: "/api/commands?limit=100000", field: "limit" },
  // GET /api/commands/:id
  { path: "/api/commands/%25", field: "id" },
  { path: "/api/commands/nope", field: "id" },
  // GET /api/tags/:tag/history
  { path: "/api/tags/%25/history", field: "tag" },
  { path: "/api/tags/%E0%A4%A/history", field: "tag" },
  { path: history("from=-100000"), field: "from" },
  { path: history("from=99999999999999999999"), field: "from" },
  { path: history("from=tomorrow"), field: "from" },
  { path: history("to=1e308"), field: "to" },
  { path: history("from=2000&to=1000"), field: "from" },
  { path: history("step=1e308d"), field: "step" },
  { path: history("step=999999999999d"), field: "step" },
  { path: history("step=0"), field: "step" },
  { path: history("step=-1s"), field: "step" },
  { path: history("step=1ms&from=0&to=100000000000"), field: "step" },
  { path: history("agg=median"), field: "agg" },
  // GET /api/frames
  { path: "/api/frames?after=-1", field: "after" },
  { path: "/api/frames?after=1.5", field: "after" },
  { path: "/api/frames?after=1e308", field: "after" },
  { path: "/api/frames?limit=0", field: "limit" },
  { path: "/api/frames?limit=abc", field: "limit" },
  { path: "/api/frames?limit=10001", field: "limit" },
  // WebSocket /api/stream parameters, checked before the upgrade
  { path: "/api/stream?from=1.5", field: "from" },
  { path: "/api/stream?from=0", field: "from" },
  { path: "/api/stream?from=1e308", field: "from" },
  // POST /api/query
  { method: "POST", path: "/api/query", body: { sql: 1 }, field: "sql" },
  { method: "POST", path: "/api/query", body: {}, field: "sql" },
  { method: "POST", path: "/api/query", body: { sql: "SELECT 1", limit: -5 }, field: "limit" },
  { method: "POST", path: "/api/query", body: { sql: "SELECT 1", timeoutMs: "soon" }, field: "timeoutMs" },
  { method: "POST", path: "/api/query", body: { sql: "SELECT 1", format: "xml" }, field: "format" },
  { method: "POST", path: "/api/query", body: "{not json", field: "body" },
  // PUT /api/tags/:tag
  { method: "PUT", path: "/api/tags/a", body: {}, field: "value" },
  { method: "PUT", path: "/api/tags/a", body: { value: 1, ttlMs: -1 }, field: "ttlMs" },
];

/** Text DuckDB or TypeBox would leak into a message. */
const LEAKS = /Parser Error|Binder Error|Conversion Error|Catalog Error|"type": "validation"|"property": "root"|BigInt|Infinity|\n/;

describe("bad input on every route", () => {
  for (const c of CASES) {
    it(`${c.method ?? "GET"} ${c.path}${c.body === undefined ? "" : ` ${json(c.body)}`}: 4xx JSON naming '${c.field}'`, async () => {
      const res = await fetch(g.url + c.path, {
        method: c.method ?? "GET",
        headers: { ...auth, ...(c.body === undefined ? {} : { "content-type": "application/json" }), ...(c.path.startsWith("/api/stream") ? UPGRADE : {}) },
        ...(c.body === undefined ? {} : { body: json(c.body) }),
      });
      const text = await res.text();
      expect([res.status, res.headers.get("content-type") ?? ""]).toEqual([expect.any(Number), expect.stringContaining("application/json")]);
      expect(res.status, text).toBeGreaterThanOrEqual(400);
      expect(res.status, text).toBeLessThan(500);
      const body = JSON.parse(text) as { error: unknown; message: unknown; field: unknown };
      expect(Object.keys(body).sort()).toEqual(["error", "field", "message"]);
      expect(typeof body.error).toBe("string");
      expect(body.field).toBe(c.field);
      expect(String(body.message)).not.toMatch(LEAKS);
    });
  }

  it("refuses a WebSocket with from=1.5 before it opens (no stream that opens then closes 1011)", async () => {
    const ws = new WebSocket(`${g.url.replace("http", "ws")}/api/stream?from=1.5&token=${auth.authorization!.slice(7)}`);
    const outcome = await new Promise<string>((resolve) => {
      ws.onopen = () => resolve("open");
      ws.onerror = () => resolve("refused");
      ws.onclose = (e) => resolve(`closed ${e.code}`);
    });
    expect(outcome).toBe("refused");
  });

  it("still serves good input: history with from/to/step, frames after 0, commands since an ISO time", async () => {
    const h = await fetch(g.url + history(`from=0&to=${Date.now() + 1000}&step=1d`), { headers: auth });
    expect([h.status, await h.text()]).toEqual([200, expect.stringContaining('"tag":"a"')]);
    expect((await fetch(`${g.url}/api/frames?after=0&limit=10`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${g.url}/api/commands?since=${new Date(0).toISOString()}&limit=5`, { headers: auth })).status).toBe(200);
  });
});
