// Tag paths are accepted the same way on every route: raw slashes or percent-encoded, decoded once.
// And the SQL views expose the log offset as `seq`, a column name that needs no quoting.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { HistoryAnswer } from "../../schemas/api.ts";
import { WriteNotDone, type Frame } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const TAG = "line1/boiler/temperature";
const PERCENT = "line1/valve-2/open:state";
const WAYS = {
  "raw slashes": (tag: string) => tag.split("/").map(encodeURIComponent).join("/"),
  "percent-encoded": (tag: string) => encodeURIComponent(tag),
};
const T0 = Date.now() - 60_000;

let g: TestGateway;
let auth: Record<string, string>;

beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`,
    // a disabled driver: a write is recorded and answered driver_not_running, which names the tag it found
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": `tags:\n  - { tag: ${TAG}, driver: sim, type: float64, access: RW, tenant: acme }\n  - { tag: "${PERCENT}", driver: sim, type: float64, access: RW, tenant: acme }\n`,
  });
  auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read write" } })}` };
  const frames: Frame[] = [TAG, PERCENT].flatMap((tag) => [1, 2, 3].map((i) => ({ kind: "data" as const, tag, value: i, ts: (T0 + i * 1000) * 1000, quality: 0, source: "sim" })));
  await g.gw.ctx.log.append(frames);
  await waitFor(async () => {
    const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ sql: "SELECT count(*) FROM data" }) });
    return r.status === 200 && ((await r.json()) as any).rows[0][0] === 6;
  }, "the frames queryable");
});
afterAll(async () => g.stop());

const history = TypeCompiler.Compile(HistoryAnswer);
const notDone = TypeCompiler.Compile(WriteNotDone);

for (const [way, path] of Object.entries(WAYS)) {
  describe(`a tag path written with ${way}`, () => {
    for (const tag of [TAG, PERCENT]) {
      it(`reaches GET /api/tags/:tag/history for '${tag}'`, async () => {
        const r = await fetch(`${g.url}/api/tags/${path(tag)}/history?from=${T0}&to=${T0 + 10_000}&step=1s&agg=count`, { headers: auth });
        const body = (await r.json()) as any;
        expect(r.status).toBe(200);
        expect(history.Check(body)).toBe(true);
        expect(body.tag).toBe(tag);
        expect(body.v.reduce((a: number, b: number | null) => a + (b ?? 0), 0)).toBe(3);
      });

      it(`reaches PUT /api/tags/:tag for '${tag}'`, async () => {
        const r = await fetch(`${g.url}/api/tags/${path(tag)}`, { method: "PUT", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ value: 5, ttlMs: 2000 }) });
        const body = (await r.json()) as any;
        // found and recorded (not 404 unknown_tag): the disabled driver answers driver_not_running
        expect({ status: r.status, code: body.code, tag: body.command?.tag }).toEqual({ status: 409, code: "driver_not_running", tag });
        expect(notDone.Check(body)).toBe(true);
      });
    }
  });
}

describe("tag paths that cannot be a tag", () => {
  it("answer 400 invalid_tag for bad percent-encoding with raw slashes", async () => {
    const r = await fetch(`${g.url}/api/tags/line1/%E0%A4%A/history`, { headers: auth });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ error: "invalid_tag", message: expect.stringContaining("percent-encoding"), field: "tag" });
  });

  it("answer 404 unknown_tag to a write on a tag not in the catalog, written either way", async () => {
    for (const path of Object.values(WAYS)) {
      const r = await fetch(`${g.url}/api/tags/${path("line9/none")}`, { method: "PUT", headers: { ...auth, "content-type": "application/json" }, body: '{"value": 1}' });
      expect(r.status).toBe(404);
      expect(((await r.json()) as any).error).toBe("unknown_tag");
    }
  });
});

describe("the SQL views' offset column", () => {
  it("is also `seq`, usable without quotes, equal to the quoted \"offset\"", async () => {
    const sql = `SELECT seq, "offset" FROM data WHERE tag = '${TAG}' ORDER BY seq`;
    const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ sql }) });
    const body = (await r.json()) as any;
    expect(r.status).toBe(200);
    expect(body.columns.map((c: any) => c.name)).toEqual(["seq", "offset"]);
    expect(body.rows.length).toBe(3);
    for (const [seq, offset] of body.rows) expect(seq).toBe(offset);
  });

  it("is `seq` in every view that has an offset", async () => {
    for (const view of ["frames", "data", "commands", "acks", "events", "frames_all", "data_all"]) {
      const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ sql: `SELECT seq FROM ${view} LIMIT 1` }) });
      expect({ view, status: r.status }).toEqual({ view, status: 200 });
    }
  });
});
