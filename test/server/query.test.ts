// The history API over a real gateway: POST /api/query (JSON, CSV, Arrow; refusals; time limit),
// tag history buckets, /api/frames replay and the /api/stream WebSocket resume.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { tableFromIPC } from "apache-arrow";
import type { Frame } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const T0 = Date.UTC(2024, 0, 1) * 1000;
let g: TestGateway;
let auth: Record<string, string>;
/** offset of the test's first frame (the gateway logs its own `gateway.started` event before it) */
let first = 0;

// two slots: this file checks that a light query is answered while a heavy one runs (no ingest here;
// with the default, one slot on 2 cores, the light one would wait for the heavy one: see storage/query-slots.ts)
const files = {
  "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nquery: { timeoutMs: 20000, maxRows: 5000000, maxConcurrent: 2 }\n`,
  "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
  "variables.yml": `tags:
  - { tag: a, driver: sim, type: float64, tenant: acme }
  - { tag: b, driver: sim, type: float64, tenant: other }
`,
};

async function post(body: unknown, headers: Record<string, string> = auth) {
  return fetch(`${g.url}/api/query`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

beforeAll(async () => {
  g = await startGateway(files);
  auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read", tenant: "acme" } })}` };
  const frames: Frame[] = [];
  for (let i = 0; i < 600; i++) {
    frames.push({ kind: "data", tag: "a", value: i, ts: T0 + i * 1_000_000, quality: 0, source: "sim" });
    frames.push({ kind: "data", tag: "b", value: 7, ts: T0 + i * 1_000_000, quality: 0, source: "sim" });
  }
  first = (await g.gw.ctx.log.append(frames)).first;
});
afterAll(async () => g.stop());

describe("POST /api/query", () => {
  it("answers JSON with typed columns and only the token's tenant's tags", async () => {
    const r = await post({ sql: `SELECT tag, count(*) AS n, avg(value) AS avg, min(ts) AS first FROM data GROUP BY tag ORDER BY tag` });
    expect(r.status).toBe(200);
    const body = await r.json();
    expect(body.columns).toEqual([
      { name: "tag", type: "VARCHAR" },
      { name: "n", type: "BIGINT" },
      { name: "avg", type: "DOUBLE" },
      { name: "first", type: "TIMESTAMP" },
    ]);
    expect(body.rows).toEqual([["a", 600, 299.5, "2024-01-01T00:00:00.000Z"]]);
    expect(body.truncated).toBe(false);
  });

  it("answers NaN and infinities as \"NaN\", \"Infinity\", \"-Infinity\" in JSON, as /api/tags does, not as null", async () => {
    const r = await post({ sql: `SELECT 'NaN'::DOUBLE AS n, 'inf'::DOUBLE AS p, '-inf'::DOUBLE AS m, 1.5::DOUBLE AS x, NULL::DOUBLE AS z` });
    expect(r.status).toBe(200);
    expect((await r.json()).rows).toEqual([["NaN", "Infinity", "-Infinity", 1.5, null]]);
  });

  it("answers CSV by Accept header and Arrow IPC by format", async () => {
    const csv = await post({ sql: `SELECT "offset", value FROM data ORDER BY "offset" LIMIT 2` }, { ...auth, accept: "text/csv" });
    expect(csv.headers.get("content-type")).toContain("text/csv");
    expect(await csv.text()).toBe(`offset,value\n${first},0\n${first + 2},1\n`);
    expect({ rows: csv.headers.get("x-row-count"), truncated: csv.headers.get("x-truncated") }).toEqual({ rows: "2", truncated: "false" });
    const arrow = await post({ sql: `SELECT "offset", tag, value, ts FROM data ORDER BY "offset"`, format: "arrow" });
    expect(arrow.headers.get("content-type")).toBe("application/vnd.apache.arrow.stream");
    const table = tableFromIPC(new Uint8Array(await arrow.arrayBuffer()));
    expect(table.numRows).toBe(600);
    expect(table.getChild("value")!.get(599)).toBe(599);
    expect(table.getChild("offset")!.get(0)).toBe(BigInt(first));
    expect({ rows: arrow.headers.get("x-row-count"), truncated: arrow.headers.get("x-truncated") }).toEqual({ rows: "600", truncated: "false" });
  });

  it("cuts at the requested row limit and says so", async () => {
    const body = await (await post({ sql: `SELECT * FROM data`, limit: 10 })).json();
    expect(body.rows.length).toBe(10);
    expect(body.truncated).toBe(true);
  });

  it("says in X-Truncated and X-Row-Count that a CSV or Arrow download was cut at the row limit", async () => {
    const csv = await post({ sql: `SELECT "offset", value FROM data ORDER BY "offset"`, limit: 10, format: "csv" });
    expect({ rows: csv.headers.get("x-row-count"), truncated: csv.headers.get("x-truncated") }).toEqual({ rows: "10", truncated: "true" });
    expect((await csv.text()).split("\n")).toHaveLength(1 + 10 + 1);
    const arrow = await post({ sql: `SELECT "offset", value FROM data ORDER BY "offset"`, limit: 10, format: "arrow" });
    expect({ rows: arrow.headers.get("x-row-count"), truncated: arrow.headers.get("x-truncated") }).toEqual({ rows: "10", truncated: "true" });
    expect(tableFromIPC(new Uint8Array(await arrow.arrayBuffer())).numRows).toBe(10);
    // exactly at the limit with nothing more: not cut
    const exact = await post({ sql: `SELECT "offset" FROM data ORDER BY "offset" LIMIT 10`, limit: 10, format: "csv" });
    expect(exact.headers.get("x-truncated")).toBe("false");
  });

  it("refuses escapes with 403 and a reason, bad SQL with 400", async () => {
    for (const sql of [`SELECT * FROM read_csv('/etc/passwd')`, `COPY (SELECT 1) TO '/tmp/x.csv'`, `SELECT 1; SELECT 2`, `SET threads = 4`, `SELECT * FROM log`]) {
      const r = await post({ sql });
      expect(r.status).toBe(403);
      expect((await r.json()).error).toBe("query_refused");
    }
    const bad = await post({ sql: `SELECT nope FROM data` });
    expect(bad.status).toBe(400);
    expect((await bad.json()).message).toContain("nope");
  });

  it("requires a token with the read scope", async () => {
    expect((await post({ sql: "SELECT 1" }, {})).status).toBe(401);
    const writeOnly = { authorization: `Bearer ${await token(null, { claims: { scope: "write" } })}` };
    expect((await post({ sql: "SELECT 1" }, writeOnly)).status).toBe(403);
  });

  it("interrupts a query past its time limit while answering other requests meanwhile", async () => {
    let slowAnsweredAt = 0;
    const slow = post({ sql: `SELECT count(*) FROM range(100000000000) a`, timeoutMs: 1500 }).then((r) => ((slowAnsweredAt = performance.now()), r));
    const other = await post({ sql: `SELECT count(*) AS n FROM data` });
    const otherAnsweredAt = performance.now();
    expect((await other.json()).rows).toEqual([[600]]);
    // answered while the slow one still ran (it is only answered at its deadline)
    expect(slowAnsweredAt === 0 || otherAnsweredAt < slowAnsweredAt).toBe(true);
    const r = await slow;
    expect(r.status).toBe(408);
    expect((await r.json()).error).toBe("query_timeout");
  });
});

describe("GET /api/tags/:tag/history", () => {
  it("returns one-minute averages, maxima and last values of the known data", async () => {
    const q = `from=${new Date(T0 / 1000).toISOString()}&to=${new Date(T0 / 1000 + 600_000).toISOString()}&step=1m`;
    const avg = await (await fetch(`${g.url}/api/tags/a/history?${q}&agg=avg`, { headers: auth })).json();
    expect(avg.t).toEqual(Array.from({ length: 10 }, (_, k) => T0 / 1000 + k * 60_000));
    expect(avg.v).toEqual(Array.from({ length: 10 }, (_, k) => 60 * k + 29.5));
    const max = await (await fetch(`${g.url}/api/tags/a/history?${q}&agg=max`, { headers: auth })).json();
    expect(max.v[9]).toBe(599);
    const last = await (await fetch(`${g.url}/api/tags/a/history?${q}&agg=last&step=5m`, { headers: auth })).json();
    expect(last.v).toEqual([299, 599]);
    const count = await (await fetch(`${g.url}/api/tags/a/history?${q}&agg=count&step=10m`, { headers: auth })).json();
    expect(count.v).toEqual([600]);
  });

  it("hides another tenant's tag and explains a bad step", async () => {
    expect((await fetch(`${g.url}/api/tags/b/history`, { headers: auth })).status).toBe(404);
    const r = await fetch(`${g.url}/api/tags/a/history?step=fast`, { headers: auth });
    expect(r.status).toBe(400);
    expect((await r.json()).message).toContain("step");
  });
});

describe("replay and stream", () => {
  it("pages frames after an offset with a next offset to continue from", async () => {
    const p1 = await (await fetch(`${g.url}/api/frames?after=${first - 1}&limit=100`, { headers: auth })).json();
    expect(p1.frames.length).toBe(50); // the other tenant's half is filtered
    expect(p1.frames.every((f: { tag: string }) => f.tag === "a")).toBe(true);
    expect(p1.next).toBe(first + 99);
    const p2 = await (await fetch(`${g.url}/api/frames?after=${p1.next}&limit=100`, { headers: auth })).json();
    expect(p2.frames[0].offset).toBe(first + 100);
  });

  it("resumes a WebSocket stream from an offset with no gap and no duplicate", async () => {
    const tok = await token(null, { claims: { scope: "read", tenant: "acme" } });
    const received: number[] = [];
    const open = (from: number) => {
      const ws = new WebSocket(`${g.url.replace("http", "ws")}/api/stream?from=${from}&tags=a&token=${tok}`);
      ws.onmessage = (m) => {
        const msg = JSON.parse(String(m.data));
        for (const f of msg.frames ?? []) received.push(f.offset);
      };
      return ws;
    };
    const ws1 = open(1);
    await waitFor(() => received.length >= 300, "the first 300 frames");
    ws1.close();
    const resumeFrom = received[received.length - 1]! + 1;
    // frames committed while disconnected, then more while connected
    const more = (n: number, from: number): Frame[] =>
      Array.from({ length: n }, (_, i) => ({ kind: "data", tag: "a", value: from + i, ts: T0, quality: 0, source: "sim" }));
    await g.gw.ctx.log.append(more(50, 1000));
    const ws2 = open(resumeFrom);
    await waitFor(() => received.length >= 650, "the backlog after resume");
    await g.gw.ctx.log.append(more(50, 2000));
    await waitFor(() => received.length >= 700, "live frames");
    ws2.close();
    const expected = (await (await post({ sql: `SELECT "offset" FROM data WHERE tag = 'a' ORDER BY 1` })).json()).rows.map((r: number[]) => r[0]);
    expect(received).toEqual(expected);
  });

  it("closes a stream without a valid token", async () => {
    const ws = new WebSocket(`${g.url.replace("http", "ws")}/api/stream?from=1`);
    const code = await new Promise<number>((resolve) => (ws.onclose = (e) => resolve(e.code)));
    expect(code).toBe(4401);
  });
});

describe("retention service", () => {
  it("archives past maxFrames on its timer, counts it in the metrics, and the API still returns every row", async () => {
    const r = await startGateway({
      ...files,
      "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nretention: { maxFrames: 100, intervalMs: 1000, chunkFrames: 1000 }\n`,
    });
    try {
      const frames: Frame[] = Array.from({ length: 1500 }, (_, i) => ({ kind: "data", tag: "a", value: i, ts: T0 + i * 1000, quality: 0, source: "sim" }));
      const appended = await r.gw.ctx.log.append(frames);
      const metric = async () => Number(/^edge_archive_frames_total (\d+)/m.exec(await (await fetch(`${r.url}/metrics`)).text())?.[1] ?? 0);
      await waitFor(async () => (await metric()) >= 1400, "the archive run", 30_000);
      const q = async (sql: string) =>
        (await (await fetch(`${r.url}/api/query`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify({ sql }) })).json()).rows;
      expect(await q(`SELECT count(*) FROM data`)).toEqual([[100]]);
      expect(await q(`SELECT count(*), sum(value), min("offset"), max("offset") FROM data_all`)).toEqual([[1500, (1499 * 1500) / 2, appended.first, appended.last]]);
    } finally {
      await r.stop();
    }
  });
});
