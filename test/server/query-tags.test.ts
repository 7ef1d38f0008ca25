// Read routes honour the token's `tags` claim: POST /api/query views, tag history, /api/frames and the
// /api/stream WebSocket show a token with `tags: ["line1/**"]` only the tags its patterns cover, while
// a token without the claim still sees its whole tenant.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Frame, Logged } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const T0 = Date.UTC(2024, 0, 1) * 1000;
const LINE1 = ["line1/boiler/pressure", "line1/boiler/temp"];
const ACME = [...LINE1, "line2/pump/speed"];
let g: TestGateway;
/** bearer headers: line1/** only, one segment wildcard, no claim (whole tenant), an empty claim */
const h: Record<"line1" | "star" | "whole" | "none", Record<string, string>> = { line1: {}, star: {}, whole: {}, none: {} };
const tok: Record<string, string> = {};

const files = {
  "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`,
  "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
  "variables.yml": `tags:
  - { tag: line1/boiler/temp, driver: sim, type: float64, tenant: acme }
  - { tag: line1/boiler/pressure, driver: sim, type: float64, tenant: acme }
  - { tag: line2/pump/speed, driver: sim, type: float64, tenant: acme }
  - { tag: line1/other, driver: sim, type: float64, tenant: other }
`,
};

/** Per tag: 60 data frames, one command, its ack and one event; plus tagless events. */
function frames(): Frame[] {
  const out: Frame[] = [];
  for (const tag of [...ACME, "line1/other"]) {
    for (let i = 0; i < 60; i++) out.push({ kind: "data", tag, value: i, ts: T0 + i * 1_000_000, quality: 0, source: "sim" });
    out.push({ kind: "cmd", id: `c-${tag}`, tag, value: 1, origin: "rest", actor: "alice", tenant: "acme", ts: T0, expiresAt: T0 + 60_000_000 });
    out.push({ kind: "ack", cmd: `c-${tag}`, tag, ok: true, status: "ok", code: "ok", ts: T0 + 1000, source: "sim" });
    out.push({ kind: "event", type: "alarm.raised", source: "sim", tag, ts: T0 });
  }
  out.push({ kind: "event", type: "driver.state", source: "sim", ts: T0, data: { state: "Active" } });
  return out;
}

async function query(sql: string, headers: Record<string, string>) {
  const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ sql }) });
  expect(r.status).toBe(200);
  return (await r.json()).rows as unknown[][];
}

const tagsOf = (fs: { tag?: string }[]) => [...new Set(fs.map((f) => f.tag ?? null))].sort();

/** Offsets of the log's frames of `tags` up to `last`, read from the log itself (not through the API). */
async function offsetsIn(tags: string[], last: number): Promise<number[]> {
  const out: number[] = [];
  for await (const page of g.gw.ctx.log.pages({ from: 1, to: last, pageSize: 1000 })) {
    for (const f of page) if ("tag" in f && f.tag !== undefined && tags.includes(f.tag)) out.push(f.offset);
  }
  return out;
}

beforeAll(async () => {
  g = await startGateway(files);
  const claims = { line1: ["line1/**"], star: ["*/boiler/temp"], whole: undefined, none: [] as string[] };
  for (const k of ["line1", "star", "whole", "none"] as const) {
    tok[k] = await token(null, { claims: { scope: "read", tenant: "acme", ...(claims[k] ? { tags: claims[k] } : {}) } });
    h[k] = { authorization: `Bearer ${tok[k]}` };
  }
  await g.gw.ctx.log.append(frames());
});
afterAll(async () => g.stop());

describe("POST /api/query with a tags claim", () => {
  it("shows a line1/** token only line1 tags of its tenant in every view, and no tagless event", async () => {
    for (const v of ["frames", "data", "commands", "acks", "events", "tags", "frames_all", "data_all"]) {
      const rows = await query(`SELECT DISTINCT tag FROM ${v} ORDER BY tag NULLS FIRST`, h.line1);
      expect({ v, tags: rows.map((r) => r[0]) }).toEqual({ v, tags: LINE1 });
    }
    expect(await query(`SELECT count(*) FROM events WHERE tag IS NULL`, h.line1)).toEqual([[0]]);
  });

  it("matches * within one path segment only", async () => {
    expect(await query(`SELECT DISTINCT tag FROM data ORDER BY tag`, h.star)).toEqual([["line1/boiler/temp"]]);
  });

  it("shows a token without the claim its whole tenant, and a token with an empty claim nothing", async () => {
    for (const v of ["frames", "commands", "acks", "events", "tags"]) {
      expect((await query(`SELECT DISTINCT tag FROM ${v} ORDER BY tag`, h.whole)).map((r) => r[0])).toEqual(ACME);
    }
    expect(await query(`SELECT count(*) FROM frames`, h.none)).toEqual([[0]]);
  });
});

describe("GET /api/tags/:tag/history with a tags claim", () => {
  const range = `from=${new Date(T0 / 1000).toISOString()}&to=${new Date(T0 / 1000 + 60_000).toISOString()}&step=1m&agg=count`;

  it("answers a covered tag and 404s a tag of its tenant the patterns do not cover", async () => {
    const ok = await fetch(`${g.url}/api/tags/${encodeURIComponent("line1/boiler/temp")}/history?${range}`, { headers: h.line1 });
    expect(ok.status).toBe(200);
    expect((await ok.json()).v).toEqual([60]);
    const hidden = await fetch(`${g.url}/api/tags/${encodeURIComponent("line2/pump/speed")}/history?${range}`, { headers: h.line1 });
    expect(hidden.status).toBe(404);
    expect((await hidden.json()).error).toBe("unknown_tag");
    // another tenant's tag stays hidden even when the pattern covers its name
    expect((await fetch(`${g.url}/api/tags/${encodeURIComponent("line1/other")}/history?${range}`, { headers: h.line1 })).status).toBe(404);
  });

  it("answers every tag of the tenant to a token without the claim", async () => {
    const r = await fetch(`${g.url}/api/tags/${encodeURIComponent("line2/pump/speed")}/history?${range}`, { headers: h.whole });
    expect(r.status).toBe(200);
    expect((await r.json()).v).toEqual([60]);
  });
});

describe("replay and stream with a tags claim", () => {
  async function allFrames(headers: Record<string, string>, extra = ""): Promise<Logged[]> {
    const out: Logged[] = [];
    let after = 0;
    for (;;) {
      const p = await (await fetch(`${g.url}/api/frames?after=${after}&limit=100${extra}`, { headers })).json();
      out.push(...p.frames);
      if (p.next >= p.head) return out;
      after = p.next;
    }
  }

  it("replays only covered frames over /api/frames, the whole tenant without the claim", async () => {
    const head = g.gw.ctx.log.head;
    const line1 = await allFrames(h.line1);
    expect(tagsOf(line1 as { tag?: string }[])).toEqual(LINE1);
    expect(line1.map((f) => f.offset).filter((o) => o <= head)).toEqual(await offsetsIn(LINE1, head));
    const whole = await allFrames(h.whole);
    expect(tagsOf(whole as { tag?: string }[])).toEqual(ACME);
    expect(whole.map((f) => f.offset).filter((o) => o <= head)).toEqual(await offsetsIn(ACME, head));
    // the request's own patterns narrow the claim further, never widen it
    expect(tagsOf((await allFrames(h.line1, "&tags=line1/*/temp,line2/**")) as { tag?: string }[])).toEqual(["line1/boiler/temp"]);
  });

  it("streams only covered frames over /api/stream, the whole tenant without the claim", async () => {
    const listen = (t: string) => {
      const got: { offset: number; tag?: string }[] = [];
      const ws = new WebSocket(`${g.url.replace("http", "ws")}/api/stream?from=1&token=${t}`);
      ws.onmessage = (m) => got.push(...(JSON.parse(String(m.data)).frames ?? []));
      return { ws, got };
    };
    const line1 = listen(tok.line1!);
    const whole = listen(tok.whole!);
    try {
      // a live frame after the backlog that both may see: once it arrives, each has everything before it
      const { last } = await g.gw.ctx.log.append([{ kind: "data", tag: "line1/boiler/temp", value: -1, ts: T0, quality: 0, source: "sim" }]);
      for (const s of [line1, whole]) await waitFor(() => s.got.some((f) => f.offset === last), "the marker frame", 20_000);
      expect(tagsOf(line1.got)).toEqual(LINE1);
      expect(line1.got.map((f) => f.offset).filter((o) => o <= last)).toEqual(await offsetsIn(LINE1, last));
      expect(tagsOf(whole.got)).toEqual(ACME);
      expect(whole.got.map((f) => f.offset).filter((o) => o <= last)).toEqual(await offsetsIn(ACME, last));
    } finally {
      line1.ws.close();
      whole.ws.close();
    }
  });
});
