// The alarms page in a real browser against the demo gateway: the live list in priority colours, a
// viewer sees no actions, an operator acknowledges (recorded with their name) and shelves with a reason,
// an alarm's history from SQL, and the overview's active-alarm count. Alarms are raised by request
// events appended to the gateway's log, as a rule would raise them.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import type { AlarmState, EventFrame } from "../../schemas/index.ts";
import { waitFor } from "../helpers/index.ts";
import { startConsoleHarness, type ConsoleHarness } from "./harness.ts";

let h: ConsoleHarness;
beforeAll(async () => {
  h = await startConsoleHarness(import.meta.file);
  const ts = Date.now() * 1000;
  await h.g.gw.ctx.log.append([
    { kind: "event", type: "alarm.raise", source: "rule:boiler", ts, data: { name: "overheat", priority: "critical", message: "Boiler overheating" } },
    { kind: "event", type: "alarm.raise", source: "rule:tank", ts, data: { name: "level", priority: "low", message: "Tank level low" } },
  ]);
}, 120_000);
afterAll(async () => h?.close());
afterEach(() => h.checkConsole());

const SLOW = 60_000;
const row = (page: Awaited<ReturnType<ConsoleHarness["open"]>>, id: string) => page.locator(`tr[data-id="${id}"]`);

async function transitionsOf(id: string): Promise<{ type: string; actor?: string; since: number }[]> {
  const out: { type: string; actor?: string; since: number }[] = [];
  for await (const f of h.g.gw.ctx.log.read({ from: 1, kinds: ["event"] })) {
    const e = f as EventFrame;
    const s = e.data as AlarmState | undefined;
    if (e.source === "alarms" && s?.id === id) out.push({ type: e.type, ...(s.actor ? { actor: s.actor } : {}), since: s.since });
  }
  return out;
}

describe("alarms page", () => {
  it("lists the alarms highest priority first in their colours, without actions for a viewer", async () => {
    const page = await h.as("viewer");
    await h.go(page, "/alarms");
    await row(page, "rule:tank:level").waitFor({ timeout: 15_000 });
    const ids = await page.locator("tr[data-id]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-id")));
    expect(ids).toEqual(["rule:boiler:overheat", "rule:tank:level"]);
    const colour = await row(page, "rule:boiler:overheat").locator(".badge").evaluate((b) => getComputedStyle(b).backgroundColor);
    expect(colour).toBe("rgb(127, 29, 29)");
    expect(await page.getByTestId("ack").count()).toBe(0);
    await h.shot(page, "alarms-viewer");
  }, SLOW);

  it("acknowledges for an operator, with the operator recorded as actor, and shows the history", async () => {
    const page = await h.as("operator");
    await h.go(page, "/alarms");
    const r = row(page, "rule:boiler:overheat");
    await r.getByTestId("ack").click();
    await r.getByTestId("state-cell").filter({ hasText: "acknowledged by operator" }).waitFor({ timeout: 15_000 });
    await waitFor(async () => (await transitionsOf("rule:boiler:overheat")).some((t) => t.type === "alarm.acked"), "the ack in the log");
    const [raised, acked] = await transitionsOf("rule:boiler:overheat");
    expect([raised, acked].map((t) => t && { type: t.type, actor: t.actor })).toEqual([{ type: "alarm.active", actor: undefined }, { type: "alarm.acked", actor: "operator" }]);
    // "Active since" stays the time it was raised, not the acknowledgement's
    const shown = (us: number) => page.evaluate((ms) => new Date(ms).toLocaleString(undefined, { hour12: false }), us / 1000);
    await r.getByTestId("since-cell").filter({ hasText: await shown(raised!.since) }).waitFor({ timeout: 15_000 });
    expect(await r.getByTestId("since-cell").getAttribute("title")).toBe(`last change ${await shown(acked!.since)}`);
    await r.getByRole("button", { name: "rule:boiler:overheat" }).click();
    const history = page.getByTestId("history");
    await history.waitFor({ timeout: 15_000 });
    expect(await history.locator("tbody tr").count()).toBe(2);
    expect(await history.textContent()).toContain("alarm.acked");
    await h.shot(page, "alarms-acked-history");
  }, SLOW);

  it("shelves an alarm with a reason: it leaves the list and shows under shelved", async () => {
    const page = await h.as("operator");
    await h.go(page, "/"); // leave and come back: the page starts from the list
    await h.go(page, "/alarms");
    const r = row(page, "rule:tank:level");
    await r.getByTestId("shelve").click();
    await page.getByTestId("shelve-reason").fill("tank being cleaned");
    await page.getByTestId("shelve-confirm").click();
    await r.waitFor({ state: "detached", timeout: 15_000 });
    await page.getByTestId("state").selectOption("shelved");
    await r.getByTestId("state-cell").filter({ hasText: "tank being cleaned" }).waitFor({ timeout: 15_000 });
    await h.shot(page, "alarms-shelved");
    expect((await transitionsOf("rule:tank:level")).map((t) => t.type)).toEqual(["alarm.active", "alarm.shelved"]);
  }, SLOW);

  it("shows the count of active alarms on the overview", async () => {
    const page = await h.as("viewer");
    await h.go(page, "/");
    const card = page.locator("a.card[href='/alarms']");
    await card.waitFor({ timeout: 15_000 });
    // the boiler alarm is active (acknowledged, still active); the tank alarm is shelved
    await card.locator(".big").filter({ hasText: /^1$/ }).waitFor({ timeout: 15_000 });
  }, SLOW);
});
