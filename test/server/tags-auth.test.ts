// GET /api/tags is a read route when auth is configured (scope `read`, the token's tenant, its `tags`
// claim), and stays open on a gateway without auth keys (local demo and console). GET /api/commands and
// /api/commands/:id honour the `tags` claim too: a command on an uncovered tag does not exist for the token.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Frame } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const T0 = Date.UTC(2024, 0, 1) * 1000;
const ACME = ["line1/boiler/pressure", "line1/boiler/temp", "line2/pump/speed"];
const variables = `tags:
  - { tag: line1/boiler/temp, driver: sim, type: float64, tenant: acme }
  - { tag: line1/boiler/pressure, driver: sim, type: float64, tenant: acme }
  - { tag: line2/pump/speed, driver: sim, type: float64, tenant: acme }
  - { tag: line1/other, driver: sim, type: float64, tenant: other }
`;
const drivers = "drivers: [{ id: sim, type: simulator, enabled: false }]\n";

let g: TestGateway;
const bearer = async (claims: Record<string, unknown>) => ({ authorization: `Bearer ${await token(null, { claims: { scope: "read", tenant: "acme", ...claims } })}` });
let whole: Record<string, string>;
let line1: Record<string, string>;

const cmd = (id: string, tag: string, tenant: string, i: number): Frame => ({ kind: "cmd", id, tag, value: i, origin: "rest", actor: "alice", tenant, ts: T0 + i, expiresAt: T0 + 60_000_000 });

beforeAll(async () => {
  g = await startGateway({ "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`, "drivers.yml": drivers, "variables.yml": variables });
  whole = await bearer({});
  line1 = await bearer({ tags: ["line1/**"] });
  const values: Frame[] = [...ACME, "line1/other"].map((tag, i) => ({ kind: "data", tag, value: i + 1, ts: T0, quality: 0, source: "sim" }));
  // the uncovered line2 command is the newest: a list limited to 1 must still find the line1 one
  await g.gw.ctx.log.append([...values, cmd("c-line1", "line1/boiler/temp", "acme", 1), cmd("c-other", "line1/other", "other", 2), cmd("c-line2", "line2/pump/speed", "acme", 3)]);
  await waitFor(async () => {
    const r = await fetch(`${g.url}/api/commands`, { headers: whole });
    return r.status === 200 && ((await r.json()) as unknown[]).length === 2;
  }, "the commands listed", 20_000, 50);
});
afterAll(async () => g.stop());

const getJson = async (path: string, headers: Record<string, string> = {}) => {
  const r = await fetch(`${g.url}${path}`, { headers });
  return { status: r.status, body: (await r.json()) as any };
};

describe("GET /api/tags with auth configured", () => {
  it("refuses a request without a token with 401 and a JSON reason", async () => {
    expect(await getJson("/api/tags")).toEqual({ status: 401, body: { error: "missing_token", message: expect.any(String), field: null } });
  });

  it("refuses a token signed with another secret with 401", async () => {
    const forged = await token(null, { claims: { scope: "read" }, key: new TextEncoder().encode("another-secret-of-at-least-32-characters") });
    expect(await getJson("/api/tags", { authorization: `Bearer ${forged}` })).toMatchObject({ status: 401, body: { error: "bad_signature" } });
  });

  it("refuses a valid token without the read scope with 403", async () => {
    expect(await getJson("/api/tags", await bearer({ scope: "write" }))).toMatchObject({ status: 403, body: { error: "insufficient_scope" } });
  });

  it("lists only the tags of the token's tenant, with their latest values", async () => {
    const r = await getJson("/api/tags", whole);
    expect(r.status).toBe(200);
    expect(r.body.map((t: { tag: string }) => t.tag).sort()).toEqual(ACME);
    expect(r.body.find((t: { tag: string }) => t.tag === "line2/pump/speed")).toMatchObject({ tenant: "acme", value: 3, quality: "Good" });
    const other = await getJson("/api/tags", await bearer({ tenant: "other" }));
    expect(other.body.map((t: { tag: string }) => t.tag)).toEqual(["line1/other"]);
  });

  it("lists only the tags the token's tags patterns cover, and none for an empty claim", async () => {
    const r = await getJson("/api/tags", line1);
    expect(r.status).toBe(200);
    // line1/other matches line1/** but belongs to another tenant
    expect(r.body.map((t: { tag: string }) => t.tag).sort()).toEqual(["line1/boiler/pressure", "line1/boiler/temp"]);
    expect((await getJson("/api/tags", await bearer({ tags: ["*/boiler/temp"] }))).body.map((t: { tag: string }) => t.tag)).toEqual(["line1/boiler/temp"]);
    expect(await getJson("/api/tags", await bearer({ tags: [] }))).toEqual({ status: 200, body: [] });
  });
});

describe("GET /api/commands with a tags claim", () => {
  it("leaves commands on uncovered tags out of the list, before the limit is applied", async () => {
    const all = await getJson("/api/commands", whole);
    expect(all.body.map((c: { id: string }) => c.id)).toEqual(["c-line2", "c-line1"]);
    const covered = await getJson("/api/commands", line1);
    expect(covered).toMatchObject({ status: 200 });
    expect(covered.body.map((c: { id: string }) => c.id)).toEqual(["c-line1"]);
    expect((await getJson("/api/commands?limit=1", line1)).body.map((c: { id: string }) => c.id)).toEqual(["c-line1"]);
    expect(await getJson("/api/commands?tag=line2/pump/speed", line1)).toEqual({ status: 200, body: [] });
    expect(await getJson("/api/commands", await bearer({ tags: [] }))).toEqual({ status: 200, body: [] });
  });

  it("answers 404 for a command on an uncovered tag, exactly as for another tenant's command", async () => {
    expect(await getJson("/api/commands/c-line1", line1)).toMatchObject({ status: 200, body: { id: "c-line1", tag: "line1/boiler/temp" } });
    expect(await getJson("/api/commands/c-line2", whole)).toMatchObject({ status: 200, body: { id: "c-line2" } });
    const uncovered = await getJson("/api/commands/c-line2", line1);
    expect(uncovered).toEqual({ status: 404, body: { error: "unknown_command", message: "no command 'c-line2'", field: "id" } });
    const otherTenant = await getJson("/api/commands/c-other", whole);
    expect(otherTenant).toEqual({ status: 404, body: { error: "unknown_command", message: "no command 'c-other'", field: "id" } });
  });
});

describe("GET /api/tags without auth configured", () => {
  it("serves the whole catalog without a token (local demo and console)", async () => {
    const open = await startGateway({ "drivers.yml": drivers, "variables.yml": variables });
    try {
      const r = await fetch(`${open.url}/api/tags`);
      expect(r.status).toBe(200);
      expect(((await r.json()) as { tag: string }[]).map((t) => t.tag).sort()).toEqual([...ACME, "line1/other"].sort());
      // writes stay refused there: only the catalog is open
      expect((await fetch(`${open.url}/api/commands`)).status).toBe(401);
    } finally {
      await open.stop();
    }
  });
});
