// A gateway restart keeps every alarm's state: GET /api/alarms answers right at once from the log
// (active, acknowledged, by whom), and the restarted engine repeats no transition.
import { afterAll, expect, it } from "bun:test";
import { Quality, type AlarmState } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());

const files = {
  "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nwatchConfig: false\n`,
  "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
  "variables.yml": `tags:
  - { tag: acme/boiler/t, driver: sim, type: float64, tenant: acme, alarms: { H: { limit: 90 } } }
  - { tag: acme/pump/p, driver: sim, type: float64, tenant: acme, alarms: { L: { limit: 2 } } }
`,
};
const headers = async () => ({ authorization: `Bearer ${await token(null, { claims: { scope: "read write", sub: "olga" } })}` });
const alarms = async (g: TestGateway) => (await (await fetch(`${g.url}/api/alarms?state=all`, { headers: await headers() })).json()) as AlarmState[];
async function transitionCount(g: TestGateway): Promise<number> {
  let n = 0;
  for await (const f of g.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.source === "alarms") n++;
  return n;
}
const reading = (tag: string, value: number) => ({ kind: "data" as const, tag, value, ts: Date.now() * 1000, quality: Quality.Good, source: "sim" });

it("answers the same alarms after a restart, acknowledged by the same operator, and repeats no transition", async () => {
  let g = await startGateway(files, { keepDir: dir.path });
  try {
    await g.gw.ctx.log.append([reading("acme/boiler/t", 95), reading("acme/pump/p", 1)]);
    await waitFor(async () => (await alarms(g)).filter((a) => a.active).length === 2, "two active alarms");
    const ack = await fetch(`${g.url}/api/alarms/${encodeURIComponent("acme/boiler/t:H")}/ack`, { method: "POST", headers: await headers() });
    expect(ack.status).toBe(200);
    await g.gw.ctx.log.append([reading("acme/pump/p", 3)]);
    await waitFor(async () => (await alarms(g)).some((a) => a.id === "acme/pump/p:L" && !a.active), "L cleared");
    await waitFor(async () => (await transitionCount(g)) === 4, "four transitions in the log");
  } finally {
    await g.stop();
  }
  g = await startGateway(files, { keepDir: dir.path });
  try {
    const after = await alarms(g);
    // same priority: the newest transition first
    expect(after.map((a) => [a.id, a.active, a.acked, a.actor ?? null])).toEqual([
      ["acme/pump/p:L", false, false, null],
      ["acme/boiler/t:H", true, true, "olga"],
    ]);
    // a reading that changes nothing, then the engine caught up: still four transitions
    await g.gw.ctx.log.append([reading("acme/boiler/t", 96)]);
    const head = g.gw.ctx.log.head;
    await waitFor(() => g.gw.ctx.log.consumers().find((c) => c.name === "alarms")!.position >= head, "the engine caught up");
    expect(await transitionCount(g)).toBe(4);
  } finally {
    await g.stop();
  }
});
