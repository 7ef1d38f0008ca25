// The rules API on a real gateway: list (read), save with a syntax check naming the line, enable/disable
// and dry run (admin), the dry run leaving the log untouched.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { authGatewayFiles, token } from "./commands-fixture.ts";
import type { DataFrame } from "../../schemas/index.ts";

let g: TestGateway;
beforeAll(async () => {
  g = await startGateway(
    authGatewayFiles(`  - { tag: pump/sp, driver: sim, type: float64, access: RW }
`),
  );
});
afterAll(async () => g?.stop());

const bearer = async (scope: string) => ({ authorization: `Bearer ${await token(null, { claims: { scope, tenant: "default" } })}`, "content-type": "application/json" });
const RULE = `export const meta = { triggers: ["level"], writes: ["pump/sp"], sets: ["level.x2"] };
export function onMessage(msg) {
  setTag("level.x2", msg.value * 2);
  if (msg.value > 5) { sendCommand("pump/sp", 1.5); raiseAlarm("high", { priority: "high", message: "level " + msg.value }); log.info("high", msg.value) }
}`;
const api = async (method: string, path: string, scope: string, body?: unknown) => {
  const r = await fetch(`${g.url}${path}`, { method, headers: await bearer(scope), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: r.status, body: (await r.json()) as Record<string, any> };
};
const level = (value: number): DataFrame => ({ kind: "data", tag: "level", value, ts: Date.now() * 1000, quality: 0, source: "test" });

describe("rules API", () => {
  it("refuses a rule edit without the admin scope", async () => {
    expect(await api("PUT", "/api/rules/lvl", "read write", { source: RULE })).toMatchObject({ status: 403, body: { error: "insufficient_scope" } });
  });

  it("refuses a rule with a syntax error naming its line, and saves nothing", async () => {
    const r = await api("PUT", "/api/rules/lvl", "admin", { source: "export const meta = { triggers: ['level'] };\nexport function onMessage(m) {\n  m.value +;\n}\n" });
    expect(r).toMatchObject({ status: 400, body: { error: "invalid_rule", field: "source", line: 3 } });
    expect(r.body.message).toStartWith("rules/lvl.js:3:");
    expect((await api("GET", "/api/rules", "read")).body).toEqual([]);
  });

  it("dry-runs an unsaved rule over the history and appends nothing", async () => {
    await g.gw.ctx.log.append([level(1), level(7)]);
    const head = g.gw.ctx.log.head;
    const r = await api("POST", "/api/rules/lvl/dry-run", "admin", { source: RULE });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ frames: 2, commands: [{ tag: "pump/sp", value: 1.5 }], setTags: [{ value: 2 }, { value: 14 }], alarms: [{ action: "raise", name: "high", priority: "high", message: "level 7" }], logs: [{ level: "info", text: "high 7" }], faults: [], refused: [] });
    expect(g.gw.ctx.log.head).toBe(head);
  });

  it("stops a dry run of a rule stuck in a loop after 5 limit faults, as the live rule would be disabled, instead of holding the gateway for every trigger", async () => {
    await g.gw.ctx.log.append(Array.from({ length: 60 }, (_, i): DataFrame => ({ kind: "data", tag: "spin", value: i, ts: Date.now() * 1000 + i, quality: 0, source: "test" })));
    const r = await api("POST", "/api/rules/spin/dry-run", "admin", { source: `export const meta = { triggers: ["spin"], timeLimitMs: 20 };\nexport function onMessage(m) { while (true) {} }\n` });
    expect(r.status).toBe(200);
    expect(r.body.faults.map((f: { kind: string }) => f.kind)).toEqual(["timeout", "timeout", "timeout", "timeout", "timeout"]);
    expect(r.body.frames).toBe(5);
    expect(r.body.stopped).toStartWith("stopped after 5 limit faults");
  });

  it("ends a dry run when its client disconnects mid-run instead of running the rest of the history for nobody", async () => {
    // 300 triggers at 20 ms each: about 6 s of running; the client leaves once the run has started
    await g.gw.ctx.log.append(Array.from({ length: 300 }, (_, i): DataFrame => ({ kind: "data", tag: "busy", value: i, ts: Date.now() * 1000 + i, quality: 0, source: "test" })));
    const rules = g.gw.ctx.services!().find((s) => s.name === "rules")!;
    const running = () => rules.status!().dryRuns;
    const aborted = async () => Number(/edge_rule_dry_runs_total\{outcome="aborted"\} (\d+)/.exec(await (await fetch(`${g.url}/metrics`)).text())?.[1] ?? 0);
    expect(await aborted()).toBe(0);
    const client = new AbortController();
    const source = `export const meta = { triggers: ["busy"] };\nexport function onMessage(m) { const t = Date.now(); while (Date.now() - t < 20) {} }\n`;
    const req = fetch(`${g.url}/api/rules/busy/dry-run`, { method: "POST", headers: await bearer("admin"), body: JSON.stringify({ source }), signal: client.signal }).catch((e: Error) => e.name);
    await waitFor(() => running() === 1, "the dry run started");
    const t0 = performance.now();
    client.abort();
    expect(await req).toBe("AbortError");
    await waitFor(() => running() === 0, "the dry run ended after its client left", 3000);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(await aborted()).toBe(1);
  });

  it("saves a rule, lists it running with its runs and time per run, and disables and enables it", async () => {
    expect((await api("PUT", "/api/rules/lvl", "admin", { source: RULE })).status).toBe(200);
    await g.gw.ctx.log.append([level(2)]);
    const listed = await waitFor(async () => {
      const l = (await api("GET", "/api/rules", "read")).body as unknown as { name: string; runs: number }[];
      return l[0]?.runs === 1 && l;
    }, "the saved rule ran");
    expect(listed[0]).toMatchObject({ name: "lvl", state: "running", runs: 1, faults: 0, lastError: null });
    const one = await api("GET", "/api/rules/lvl", "read");
    expect(one.body).toMatchObject({ name: "lvl", source: RULE });
    expect((await api("POST", "/api/rules/lvl/disable", "admin")).body).toMatchObject({ state: "disabled", disabledReason: "disabled by alice" });
    expect((await api("POST", "/api/rules/lvl/enable", "admin")).body).toMatchObject({ state: "running" });
    expect((await api("POST", "/api/rules/nope/enable", "admin")).status).toBe(404);
  });
});
