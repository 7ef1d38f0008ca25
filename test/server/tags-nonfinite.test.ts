// A NaN or infinite reading (a float register a device fills with it: the log keeps it exactly) must not
// break the answers that show it: GET /api/tags said 500 "the answer did not match its documented schema"
// for every tag once one tag held NaN, and the tag's history too (found from outside with a Modbus float32
// register set to 0x7FC00000 beside normal values).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Frame } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const variables = `tags:
  - { tag: f/nan, driver: sim, type: float32 }
  - { tag: f/inf, driver: sim, type: float64 }
  - { tag: f/ninf, driver: sim, type: float64 }
  - { tag: f/ok, driver: sim, type: float64 }
`;
const drivers = "drivers: [{ id: sim, type: simulator, enabled: false }]\n";

let g: TestGateway;
let headers: Record<string, string>;
const now = Date.now();

beforeAll(async () => {
  g = await startGateway({ "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`, "drivers.yml": drivers, "variables.yml": variables });
  headers = { authorization: `Bearer ${await token(null, { claims: { scope: "read" } })}` };
  const at = (s: number) => (now - 60_000 + s * 1000) * 1000;
  const data = (tag: string, value: number, s: number): Frame => ({ kind: "data", tag, value, ts: at(s), quality: 0, source: "sim" });
  // f/nan: 1.5 in the first 10 s bucket, NaN among normal values in the second
  await g.gw.ctx.log.append([data("f/nan", 1.5, 1), data("f/nan", 2, 11), data("f/nan", NaN, 12), data("f/inf", Infinity, 13), data("f/ninf", -Infinity, 13), data("f/ok", 1.25, 13), data("f/nan", NaN, 14)]);
});
afterAll(async () => g.stop());

describe("non-finite readings in the API's answers", () => {
  it("GET /api/tags lists every tag, NaN and the infinities as strings Number() reads back", async () => {
    const r = await fetch(`${g.url}/api/tags`, { headers });
    const body = (await r.json()) as { tag: string; value: unknown; quality: string }[];
    expect(r.status).toBe(200);
    const value = (tag: string) => body.find((t) => t.tag === tag)?.value;
    expect([value("f/nan"), value("f/inf"), value("f/ninf"), value("f/ok")]).toEqual(["NaN", "Infinity", "-Infinity", 1.25]);
    expect(Number(value("f/ninf"))).toBe(-Infinity);
    expect(body.find((t) => t.tag === "f/nan")?.quality).toBe("Good");
  });

  it("GET /api/frames gives the values as /api/tags does, not as null", async () => {
    const r = await fetch(`${g.url}/api/frames?tags=f/inf&limit=100`, { headers });
    expect(r.status).toBe(200);
    const frames = ((await r.json()) as { frames: { kind: string; tag?: string; value?: unknown }[] }).frames.filter((f) => f.kind === "data");
    expect(frames.map((f) => [f.tag, f.value])).toEqual([["f/inf", "Infinity"]]);
    const nan = await fetch(`${g.url}/api/frames?tags=f/nan&limit=100`, { headers });
    const values = ((await nan.json()) as { frames: { kind: string; value?: unknown }[] }).frames.filter((f) => f.kind === "data").map((f) => f.value);
    expect(values).toEqual([1.5, 2, "NaN", "NaN"]);
  });

  it("GET /api/tags/:tag/history answers, a bucket with a NaN reading null", async () => {
    const from = now - 60_000;
    const r = await fetch(`${g.url}/api/tags/f/nan/history?from=${from}&to=${from + 30_000}&step=10s&agg=avg`, { headers });
    const body = (await r.json()) as { t: number[]; v: (number | null)[] };
    expect(r.status).toBe(200);
    expect(body.t).toEqual([from, from + 10_000]);
    expect(body.v).toEqual([1.5, null]);
    const last = await fetch(`${g.url}/api/tags/f/inf/history?from=${from}&to=${from + 30_000}&step=10s&agg=max`, { headers });
    expect(last.status).toBe(200);
    expect(((await last.json()) as { v: unknown[] }).v).toEqual([null]);
  });
});
