// With auth configured every read route needs a token with the `read` scope (403 insufficient_scope
// without it, the stream included), every route of the API is classified (read, write or operational),
// and a tag of another tenant answers exactly as a tag that does not exist (404 unknown_tag).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createApi } from "../../server/api/index.ts";
import { STREAM_CLOSE_UNAUTHORIZED } from "../../server/api/query.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { authGatewayFiles, token } from "./commands-fixture.ts";

let g: TestGateway;
beforeAll(async () => {
  g = await startGateway(
    authGatewayFiles(`  - { tag: acme/sp, driver: sim, type: float64, access: RW, tenant: acme }
  - { tag: globex/sp, driver: sim, type: float64, access: RW, tenant: globex }
`),
  );
});
afterAll(async () => g?.stop());

const bearer = async (scope: string) => `Bearer ${await token(null, { claims: { scope } })}`;

/** Every read route of the API, as a request. */
const READ_ROUTES: Record<string, (auth: string) => Promise<Response>> = {
  "GET /api/tags": (auth) => fetch(`${g.url}/api/tags`, { headers: { authorization: auth } }),
  "GET /api/tags/:tag/history": (auth) => fetch(`${g.url}/api/tags/acme%2Fsp/history`, { headers: { authorization: auth } }),
  "GET /api/frames": (auth) => fetch(`${g.url}/api/frames`, { headers: { authorization: auth } }),
  "POST /api/query": (auth) => fetch(`${g.url}/api/query`, { method: "POST", headers: { authorization: auth, "content-type": "application/json" }, body: JSON.stringify({ sql: "SELECT 1 AS x" }) }),
  "GET /api/commands": (auth) => fetch(`${g.url}/api/commands`, { headers: { authorization: auth } }),
  "GET /api/commands/:id": (auth) => fetch(`${g.url}/api/commands/nope`, { headers: { authorization: auth } }),
  "GET /api/overview": (auth) => fetch(`${g.url}/api/overview`, { headers: { authorization: auth } }),
  "GET /api/drivers": (auth) => fetch(`${g.url}/api/drivers`, { headers: { authorization: auth } }),
  "GET /api/rules": (auth) => fetch(`${g.url}/api/rules`, { headers: { authorization: auth } }),
  "GET /api/rules/:name": (auth) => fetch(`${g.url}/api/rules/nope`, { headers: { authorization: auth } }),
  "GET /api/alarms": (auth) => fetch(`${g.url}/api/alarms`, { headers: { authorization: auth } }),
  "GET /api/opcua/certificates": (auth) => fetch(`${g.url}/api/opcua/certificates`, { headers: { authorization: auth } }),
  "GET /api/plugins": (auth) => fetch(`${g.url}/api/plugins`, { headers: { authorization: auth } }),
};
/** What a reader gets where it is not 200: the command id and the rule do not exist; this gateway runs no OPC UA server. */
const SERVED_STATUS: Record<string, number> = { "GET /api/commands/:id": 404, "GET /api/rules/:name": 404, "GET /api/opcua/certificates": 409 };
/** The alarm actions are tested with their feature (test/server/alarms-api.test.ts: a viewer cannot acknowledge). */
const WRITE_ROUTES = ["PUT /api/tags/:tag", "POST /api/alarms/:id/ack", "POST /api/alarms/:id/shelve", "POST /api/alarms/:id/unshelve"];
/** Routes that need the `admin` scope (tested with their own feature: test/server/backup.test.ts, discover-api.test.ts, rules-api.test.ts, inspect-api.test.ts, config-files.test.ts, opcua-certs.test.ts). */
const ADMIN_ROUTES = [
  "POST /api/backup", "POST /api/discover/opcua", "POST /api/discover/modbus", "POST /api/drivers/:id/restart", "POST /api/drivers/:id/pause", "POST /api/drivers/:id/resume",
  "PUT /api/rules/:name", "POST /api/rules/:name/enable", "POST /api/rules/:name/disable", "POST /api/rules/:name/dry-run",
  "POST /api/inspect/modbus", "GET /api/config/files", "POST /api/config/check", "PUT /api/config/files/:name", "POST /api/opcua/certificates/:thumbprint/trust",
  "POST /api/plugins", "POST /api/plugins/:name/swap", "POST /api/plugins/:name/rollback", "POST /api/plugins/:name/unload",
];
/** Open too: the API's own description (routes and schemas, no data). */
const DOCUMENTATION_ROUTES = ["GET /api/openapi.json", "GET /api/docs"];
/**
 * Open without a token, by decision: liveness and readiness are for the orchestrator (no tag values),
 * /metrics for the scraper (its defaults, tag names in labels included, belong to the safe-defaults
 * work; see server/auth/README.md).
 */
/** The console's login: open by nature (password, rate-limited), and its refresh takes a console token (test/server/login.test.ts). */
const LOGIN_ROUTES = ["POST /api/login", "POST /api/login/refresh"];
const OPERATIONAL_ROUTES = ["GET /healthz", "GET /readyz", "GET /metrics", ...DOCUMENTATION_ROUTES, ...LOGIN_ROUTES];

/** Opens /api/stream with `auth`; resolves with the error it was sent and its close code. */
function streamAnswer(auth: string): Promise<{ error: string | null; code: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${g.url.replace("http", "ws")}/api/stream?token=${auth.slice("Bearer ".length)}`);
    let error: string | null = null;
    ws.onmessage = (m) => {
      const msg = JSON.parse(String(m.data));
      if (msg.error) error = msg.error;
      if (msg.hello) ws.close(1000);
    };
    ws.onclose = (e) => resolve({ error, code: e.code });
  });
}

describe("the read scope", () => {
  for (const [route, request] of Object.entries(READ_ROUTES)) {
    it(`refuses ${route} to a token without the read scope with 403 insufficient_scope`, async () => {
      const r = await request(await bearer("write"));
      expect(r.status).toBe(403);
      expect(await r.json()).toMatchObject({ error: "insufficient_scope", message: "the token has no 'read' scope" });
    });
    it(`serves ${route} to a token with the read scope`, async () => {
      const r = await request(await bearer("read"));
      // never a refusal of the token (401/403)
      expect(r.status).toBe(SERVED_STATUS[route] ?? 200);
    });
  }

  it("closes /api/stream opened with a token without the read scope with 4401 and insufficient_scope", async () => {
    expect(await streamAnswer(await bearer("write"))).toEqual({ error: "insufficient_scope", code: STREAM_CLOSE_UNAUTHORIZED });
    expect(await streamAnswer(await bearer("read"))).toEqual({ error: null, code: 1000 });
  });

  it("leaves no route of the API unclassified (read, write or operational)", () => {
    const classified = new Set([...Object.keys(READ_ROUTES), "WS /api/stream", ...WRITE_ROUTES, ...ADMIN_ROUTES, ...OPERATIONAL_ROUTES]);
    const routes = createApi(g.gw.ctx).routes.map((r) => `${r.method === "WS" || r.method === "$INTERNALWS" ? "WS" : r.method} ${r.path}`);
    expect(routes).toContain("GET /api/commands");
    const unclassified = [...new Set(routes)].filter((r) => !classified.has(r));
    // a new route must say here which it is (and, if it reads, be tested above)
    expect(unclassified).toEqual([]);
  });

  it("answers the operational routes without a token", async () => {
    for (const path of ["/healthz", "/readyz", "/metrics"]) expect([200, 503]).toContain((await fetch(`${g.url}${path}`)).status);
  });
});

describe("another tenant's tag answers as an unknown one", () => {
  const put = async (tag: string, scope: string) => {
    const r = await fetch(`${g.url}/api/tags/${tag}`, { method: "PUT", headers: { authorization: await bearer(scope), "content-type": "application/json" }, body: JSON.stringify({ value: 1 }) });
    return { status: r.status, body: (await r.json()) as { error: string; message: string; field: string | null } };
  };
  const history = async (tag: string) => {
    const r = await fetch(`${g.url}/api/tags/${encodeURIComponent(tag)}/history`, { headers: { authorization: await bearer("read") } });
    return { status: r.status, body: (await r.json()) as { error: string; message: string; field: string | null } };
  };

  it("answers a write to another tenant's tag with the 404 unknown_tag of a tag that does not exist", async () => {
    const head = g.gw.ctx.log.head;
    const foreign = await put("globex/sp", "read write");
    const unknown = await put("globex/nope", "read write");
    expect(foreign).toEqual({ status: 404, body: { error: "unknown_tag", message: "no tag 'globex/sp'", field: null } });
    expect(unknown).toEqual({ status: 404, body: { error: "unknown_tag", message: "no tag 'globex/nope'", field: null } });
    expect(g.gw.ctx.log.head).toBe(head); // nothing recorded
  });

  it("answers a token without write scope the same for another tenant's tag and an unknown one", async () => {
    const foreign = await put("globex/sp", "read");
    expect(foreign).toEqual(await put("globex/nope", "read"));
    expect(foreign).toMatchObject({ status: 403, body: { error: "insufficient_scope" } });
  });

  it("answers the history of another tenant's tag with the 404 unknown_tag of a tag that does not exist", async () => {
    expect(await history("globex/sp")).toEqual({ status: 404, body: { error: "unknown_tag", message: "no tag 'globex/sp'", field: "tag" } });
    expect(await history("globex/nope")).toEqual({ status: 404, body: { error: "unknown_tag", message: "no tag 'globex/nope'", field: "tag" } });
    await waitFor(async () => (await history("acme/sp")).status === 200, "the own tenant's history");
  });
});
