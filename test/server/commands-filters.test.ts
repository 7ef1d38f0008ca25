// GET /api/commands filters for the console's audit page: by actor, origin, the ack's code and a time
// range, each applied before the limit (the newest N matching commands, not N commands then filtered).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let between = 0;

beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nwatchConfig: false\n`,
    "drivers.yml": "drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 3600000 } }\n  - { id: off, type: simulator, enabled: false }\n",
    "variables.yml": "tags:\n  - { tag: acme/a, driver: sim, type: float64, access: RW, tenant: acme }\n  - { tag: acme/b, driver: off, type: float64, access: RW, tenant: acme }\n",
  });
  const put = async (sub: string, tag: string, value: number) =>
    fetch(`${g.url}/api/tags/${encodeURIComponent(tag)}`, { method: "PUT", headers: { authorization: `Bearer ${await token(null, { claims: { sub, scope: "write" } })}` }, body: JSON.stringify({ value }) });
  await put("alice", "acme/a", 1);
  await put("alice", "acme/b", 2);
  between = Date.now();
  await Bun.sleep(5); // two commands in one millisecond would sit on both sides of `between`
  await put("bob", "acme/a", 3);
  const mqtt = await g.gw.ctx.commands.submit({ tag: "acme/b", value: 4, origin: "mqtt", actor: "carol", tenant: "acme", ttlMs: 5000 });
  await waitFor(() => g.gw.ctx.commands.waitForAck(mqtt.id, 5000), "the mqtt command's ack");
}, 30_000);
afterAll(async () => g?.stop());

const list = async (query: string) => {
  const r = await fetch(`${g.url}/api/commands?${query}`, { headers: { authorization: `Bearer ${await token(null, { claims: { scope: "read" } })}` } });
  return { status: r.status, body: (await r.json()) as any };
};
const values = (r: { body: { value: number }[] }) => r.body.map((c) => c.value);

describe("GET /api/commands filters", () => {
  it("filters by actor", async () => {
    expect(values(await list("actor=alice"))).toEqual([2, 1]);
    expect(values(await list("actor=bob"))).toEqual([3]);
  });

  it("filters by origin", async () => {
    expect(values(await list("origin=mqtt"))).toEqual([4]);
    expect(values(await list("origin=rest"))).toEqual([3, 2, 1]);
  });

  it("filters by the ack's code, before the limit", async () => {
    const notRunning = await list("code=driver_not_running&limit=1");
    expect(notRunning.body).toHaveLength(1);
    expect(notRunning.body[0]).toMatchObject({ value: 4, code: "driver_not_running" });
    expect(values(await list("code=driver_not_running"))).toEqual([4, 2]);
    expect((await list("code=pending")).body).toEqual([]);
  });

  it("filters by a time range", async () => {
    expect(values(await list(`until=${between}`))).toEqual([2, 1]);
    expect(values(await list(`since=${between}`))).toEqual([4, 3]);
  });

  it("refuses an unknown origin or code naming the parameter", async () => {
    expect(await list("origin=fax")).toMatchObject({ status: 400, body: { field: "origin" } });
    expect(await list("code=maybe")).toMatchObject({ status: 400, body: { field: "code" } });
  });
});
