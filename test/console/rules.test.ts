// The rules page in a browser (Debian's chromium) on the demo plant: an admin writes a rule, sees the
// gateway's refusal with its line, saves a valid one and sees it run, dry-runs it over the history, disables
// and enables it; a viewer sees the list without the editing buttons.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startConsoleHarness, type ConsoleHarness } from "./harness.ts";

let h: ConsoleHarness;
beforeAll(async () => {
  h = await startConsoleHarness(import.meta.path);
}, 120_000);
afterAll(async () => h?.close());

const VALID = `export const meta = { triggers: ["line1/boiler/temperature"], sets: ["rules/boiler.f"] };
export function onMessage(msg) { setTag("rules/boiler.f", msg.value * 9 / 5 + 32); log.debug("t", msg.value) }
`;

describe("rules page", () => {
  it("lets an admin write a rule: the refusal names its line, the saved rule runs, dry-runs, disables and enables", async () => {
    const page = await h.as("admin");
    await h.go(page, "/rules");
    await page.getByTestId("new-rule").click();
    await page.getByTestId("name").fill("boiler");
    h.allowErrors(page, /400/); // the refused save is logged by the browser
    await page.getByTestId("source").fill(`export const meta = { triggers: ["line1/boiler/temperature"] };\nexport function onMessage(msg) {\n  msg.value +;\n}\n`);
    await page.getByTestId("save").click();
    await expect(page.getByTestId("error-line").textContent()).resolves.toBe("Line 3");
    await page.getByTestId("source").fill(VALID);
    await page.getByTestId("save").click();
    await page.getByTestId("saved").waitFor();
    const row = page.getByTestId("rule-boiler");
    await row.getByTestId("state").filter({ hasText: "running" }).waitFor();
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=rule-boiler] [data-testid=runs]")?.textContent?.replaceAll(",", "")) > 0, null, { timeout: 15_000 });
    await page.getByTestId("dry-run").click();
    const dry = page.getByTestId("dry-result");
    await dry.waitFor();
    expect(await dry.textContent()).toMatch(/[1-9][\d,]* trigger frames/);
    await row.getByTestId("toggle").click();
    await row.getByTestId("state").filter({ hasText: "disabled" }).waitFor();
    await row.getByTestId("toggle").click();
    await row.getByTestId("state").filter({ hasText: "running" }).waitFor();
    await h.shot(page, "rules-admin");
    h.checkConsole();
  }, 60_000);

  it("shows a viewer the rules with their state and runs, without editing buttons", async () => {
    const page = await h.as("viewer");
    await h.go(page, "/rules");
    await page.getByTestId("rule-boiler").waitFor();
    expect(await page.getByTestId("new-rule").count()).toBe(0);
    expect(await page.getByTestId("rule-boiler").getByTestId("toggle").count()).toBe(0);
    h.checkConsole();
  }, 30_000);

  it("writes an invalid rule's state readably (white on red, not red on red)", async () => {
    const rules = join(h.g.dir, "config", "rules");
    mkdirSync(rules, { recursive: true });
    writeFileSync(join(rules, "broken.js"), `export const meta = { triggers: ["line1/boiler/temperature"] };\nexport function onMessage(msg) { if (msg.value > ) return; }\n`);
    const page = await h.as("viewer");
    await h.go(page, "/rules");
    const pill = page.getByTestId("rule-broken").getByTestId("state").filter({ hasText: "invalid" });
    await pill.waitFor({ timeout: 15_000 });
    const { color, background } = await pill.evaluate((el) => ({ color: getComputedStyle(el).color, background: getComputedStyle(el).backgroundColor }));
    expect(color).not.toBe(background);
    expect(color).toBe("rgb(255, 255, 255)");
    h.checkConsole();
  }, 30_000);
});
