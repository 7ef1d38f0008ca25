// The alarms API on a real gateway: the list with its filters (scope read), acknowledge and shelve with
// the operator's sub recorded as actor (scope write; a viewer is refused), unknown and foreign alarms
// answered 404, bad bodies 400 naming the field, and the history as SQL over the `alarms` view.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Quality, type AlarmState, type Frame } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { authGatewayFiles, token } from "./commands-fixture.ts";

let g: TestGateway;
beforeAll(async () => {
  g = await startGateway(
    authGatewayFiles(`  - { tag: acme/boiler/t, driver: sim, type: float64, tenant: acme, alarms: { HH: { limit: 95, priority: critical }, H: { limit: 90 } } }
  - { tag: acme/pump/p, driver: sim, type: float64, tenant: acme, alarms: { L: { limit: 2, priority: low } } }
  - { tag: globex/t, driver: sim, type: float64, tenant: globex, alarms: { H: { limit: 1 } } }
`),
  );
});
afterAll(async () => g?.stop());

const reading = (tag: string, value: number): Frame => ({ kind: "data", tag, value, ts: Date.now() * 1000, quality: Quality.Good, source: "sim" });
const auth = async (scope: string, sub = "olga") => ({ authorization: `Bearer ${await token(null, { claims: { scope, sub } })}` });
const list = async (query = "", scope = "read") => {
  const r = await fetch(`${g.url}/api/alarms${query}`, { headers: await auth(scope) });
  return { status: r.status, body: (await r.json()) as AlarmState[] & { error?: string; field?: string } };
};
const act = async (id: string, action: string, scope: string, body?: unknown) => {
  const r = await fetch(`${g.url}/api/alarms/${encodeURIComponent(id)}/${action}`, {
    method: "POST",
    headers: { ...(await auth(scope)), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: (await r.json()) as AlarmState & { error?: string; field?: string } };
};
const sql = async (q: string) => {
  const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: { ...(await auth("read")), "content-type": "application/json" }, body: JSON.stringify({ sql: q }) });
  return (await r.json()) as { rows: unknown[][] };
};

describe("alarms API", () => {
  beforeAll(async () => {
    await g.gw.ctx.log.append([reading("acme/boiler/t", 97), reading("acme/pump/p", 1), reading("globex/t", 5)]);
    await waitFor(async () => (await list()).body.length === 3, "three alarms of acme");
  });

  it("lists the token's tenant's alarms, highest priority first, with filters", async () => {
    const all = await list();
    expect(all.body.map((a) => [a.id, a.priority, a.active, a.acked])).toEqual([
      ["acme/boiler/t:HH", "critical", true, false],
      ["acme/boiler/t:H", "medium", true, false],
      ["acme/pump/p:L", "low", true, false],
    ]);
    expect((await list("?priority=critical,low")).body.map((a) => a.id)).toEqual(["acme/boiler/t:HH", "acme/pump/p:L"]);
    expect((await list("?tag=acme/pump/")).body.map((a) => a.id)).toEqual(["acme/pump/p:L"]);
    expect(await list("?priority=urgent")).toMatchObject({ status: 400, body: { error: "invalid_request", field: "priority" } });
  });

  it("refuses an acknowledgement to a viewer (read scope) and records nothing", async () => {
    const r = await act("acme/boiler/t:HH", "ack", "read");
    expect(r).toMatchObject({ status: 403, body: { error: "insufficient_scope" } });
    const acks: unknown[] = [];
    for await (const f of g.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === "alarm.acked") acks.push(f);
    expect(acks).toEqual([]);
    expect((await list()).body.find((a) => a.id === "acme/boiler/t:HH")?.acked).toBe(false);
  });

  it("acknowledges with the operator's sub as actor, in the log and in the SQL history", async () => {
    const r = await act("acme/boiler/t:HH", "ack", "read write");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: "acme/boiler/t:HH", active: true, acked: true, actor: "olga" });
    await g.gw.ctx.log.append([reading("acme/boiler/t", 80)]);
    const history = await waitFor(async () => {
      const h = await sql(`SELECT type, actor, active, acked FROM alarms WHERE id = 'acme/boiler/t:HH' ORDER BY seq`);
      return h.rows.length === 3 && h.rows;
    }, "raise, ack and clear in the alarms view");
    expect(history).toEqual([
      ["alarm.active", null, true, false],
      ["alarm.acked", "olga", true, true],
      ["alarm.cleared", "olga", false, true],
    ]);
    // cleared and acknowledged: gone from the annunciated list
    await waitFor(async () => !(await list()).body.some((a) => a.id === "acme/boiler/t:HH"), "HH gone from the list");
  });

  it("runs the history queries of bridges/rules/README.md", async () => {
    const perOperator = await sql(`SELECT actor, count(*) FROM alarms WHERE type = 'alarm.acked' AND ts > now() - INTERVAL 7 DAY GROUP BY actor`);
    expect(perOperator.rows).toEqual([["olga", 1]]);
    const toAck = await sql(`SELECT a.id, a.ts AS raised, min(k.ts) - a.ts AS to_ack FROM alarms a JOIN alarms k ON k.id = a.id AND k.type = 'alarm.acked' AND k.seq > a.seq
WHERE a.type = 'alarm.active' GROUP BY a.id, a.ts, a.seq`);
    expect(toAck.rows.map((r) => r[0])).toEqual(["acme/boiler/t:HH"]);
  });

  it("keeps when an alarm became active (activeSince) through its clearing and acknowledgement, while since follows the last transition", async () => {
    // H was raised by the first reading and cleared by the 80 of the test above: still unacknowledged
    const before = (await list()).body.find((a) => a.id === "acme/boiler/t:H")!;
    expect(before).toMatchObject({ active: false, acked: false });
    const raised = await sql(`SELECT ts_us FROM alarms WHERE id = 'acme/boiler/t:H' AND type = 'alarm.active'`);
    expect(before.activeSince).toBe(Number(raised.rows[0]![0]));
    expect(before.since).toBeGreaterThan(before.activeSince!);
    const r = await act("acme/boiler/t:H", "ack", "read write");
    expect(r.body.activeSince).toBe(before.activeSince!);
    expect(r.body.since).toBeGreaterThan(before.since);
    expect((await list("?state=all")).body.find((a) => a.id === "acme/boiler/t:H")?.activeSince).toBe(before.activeSince!);
    // the SQL history carries it on every transition: the acknowledgement's row says when the alarm became active
    const acked = await waitFor(async () => {
      const h = await sql(`SELECT epoch_us(active_since) FROM alarms WHERE id = 'acme/boiler/t:H' AND type = 'alarm.acked'`);
      return h.rows.length === 1 && h.rows;
    }, "the acknowledgement in the alarms view");
    expect(Number(acked[0]![0])).toBe(before.activeSince!);
  });

  it("answers an unknown alarm and another tenant's alarm alike with 404", async () => {
    const unknown = await act("acme/nope:H", "ack", "read write");
    const foreign = await act("globex/t:H", "ack", "read write");
    expect(unknown).toEqual({ status: 404, body: { error: "unknown_alarm", message: "no alarm 'acme/nope:H'", field: "id" } as never });
    expect(foreign).toEqual({ status: 404, body: { error: "unknown_alarm", message: "no alarm 'globex/t:H'", field: "id" } as never });
  });

  it("takes an alarm id written with raw slashes as the tag routes do: acknowledged, unknown 404, bad encoding 400", async () => {
    const post = async (path: string) => {
      const r = await fetch(`${g.url}/api/alarms/${path}`, { method: "POST", headers: await auth("read write") });
      return { status: r.status, body: (await r.json()) as AlarmState & { error?: string; field?: string } };
    };
    const ok = await post("acme/pump/p:L/ack");
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: "acme/pump/p:L", acked: true, actor: "olga" });
    expect(await post("acme/nope:H/ack")).toMatchObject({ status: 404, body: { error: "unknown_alarm", field: "id" } });
    expect(await post("acme/%E0%A4%A:H/unshelve")).toMatchObject({ status: 400, body: { error: "invalid_id", field: "id" } });
    expect((await post("acme/pump/p:L/explode")).status).toBe(404); // no such action: the router's 404
  });

  it("shelves with a reason (hidden from the list), refuses a bad body naming the field, and unshelves", async () => {
    const bad = await act("acme/pump/p:L", "shelve", "read write", { durationMs: -5, reason: "x" });
    expect(bad).toMatchObject({ status: 400, body: { field: "durationMs" } });
    const noReason = await act("acme/pump/p:L", "shelve", "read write", { durationMs: 60_000 });
    expect(noReason).toMatchObject({ status: 400, body: { field: "reason" } });
    const s = await act("acme/pump/p:L", "shelve", "read write", { durationMs: 60_000, reason: "pump in maintenance" });
    expect(s.status).toBe(200);
    expect(s.body).toMatchObject({ actor: "olga", reason: "pump in maintenance" });
    expect(s.body.shelvedUntil).toBeGreaterThan(Date.now() * 1000 + 50_000_000);
    expect((await list()).body.map((a) => a.id)).not.toContain("acme/pump/p:L");
    expect((await list("?state=shelved")).body.map((a) => a.id)).toEqual(["acme/pump/p:L"]);
    const u = await act("acme/pump/p:L", "unshelve", "read write");
    expect(u.status).toBe(200);
    expect(u.body.shelvedUntil).toBeUndefined();
    expect((await list()).body.map((a) => a.id)).toContain("acme/pump/p:L");
  });

  it("reports the engine in /readyz and the active alarms in /metrics and the overview", async () => {
    const ready = (await (await fetch(`${g.url}/readyz`)).json()) as Record<string, unknown>;
    expect(JSON.stringify(ready)).toContain("alarms");
    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    expect(metrics).toMatch(/edge_alarms_active\{priority="medium"\} 1/);
    const overview = (await (await fetch(`${g.url}/api/overview`, { headers: await auth("read") })).json()) as { alarms: { active: number } };
    expect(overview.alarms.active).toBeGreaterThanOrEqual(1);
  });
});
