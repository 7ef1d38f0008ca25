// The configuration page in a real browser (admin): an edit with an error is shown with its file and path
// as you type, Apply is refused and nothing changes on disk or in the gateway; a good edit applies by hot
// reload (a new tag in the catalog).
import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { consoleHarness, SLOW } from "./ops-harness.ts";

const h = consoleHarness(import.meta.file);

const variablesOnDisk = () => readFileSync(join(h.g.gw.ctx.config.dir, "variables.yml"), "utf8");

describe("Configuration page", () => {
  it("shows an edit's error with file and path as you type, and Apply stays off: nothing changes", async () => {
    const before = variablesOnDisk();
    const page = await h.open("admin", "/config");
    const editor = page.locator("textarea[name=config-text]");
    await page.getByTestId("check-ok").waitFor({ timeout: 15_000 });
    await editor.fill(before.replace("driver: plc\n    type: float32\n    address: { area: holding, address: 0 }", "driver: plc\n    type: float33\n    address: { area: holding, address: 0 }"));
    const problems = page.getByTestId("problems");
    await problems.waitFor({ timeout: 15_000 });
    expect(await problems.textContent()).toMatch(/variables\.yml at tags\[1\]\.type: Expected one of/);
    expect(await page.getByTestId("diff").textContent()).toContain("+    type: float33");
    expect(await page.getByRole("button", { name: "Apply" }).isDisabled()).toBe(true);
    await h.shot(page, "config-error");
    expect(variablesOnDisk()).toBe(before);
    expect(h.g.gw.ctx.catalog.get("line1/boiler/temperature")?.type).toBe("float32");
    await page.context().close();
  }, SLOW);

  it("applies a good edit by hot reload: the new tag is in the gateway and on disk", async () => {
    const before = variablesOnDisk();
    const page = await h.open("admin", "/config");
    const editor = page.locator("textarea[name=config-text]");
    await page.getByTestId("check-ok").waitFor({ timeout: 15_000 });
    const added = `${before.trimEnd()}\n  - tag: line1/spare/register\n    driver: plc\n    type: uint16\n    address: { area: holding, address: 50 }\n    unit: rpm\n`;
    await editor.fill(added);
    await page.getByTestId("diff").filter({ hasText: "+  - tag: line1/spare/register" }).waitFor({ timeout: 15_000 });
    await page.getByTestId("check-ok").waitFor({ timeout: 15_000 });
    const apply = page.getByRole("button", { name: "Apply" });
    await page.waitForFunction(() => !(document.querySelector("button.primary") as HTMLButtonElement | null)?.disabled, undefined, { timeout: 10_000 });
    await apply.click();
    const applied = page.getByTestId("applied");
    await applied.waitFor({ timeout: 20_000 });
    expect(await applied.textContent()).toContain("restarted plc");
    await h.shot(page, "config-applied");
    expect(variablesOnDisk()).toBe(added);
    expect(h.g.gw.ctx.catalog.get("line1/spare/register")?.unit).toBe("rpm");
    await page.context().close();
  }, SLOW);

  it("is not in a viewer's menu, and its API refuses a viewer", async () => {
    const page = await h.open(null, "/config");
    h.allowErrors(page, /status of 403/);
    await h.login(page, "viewer");
    expect(await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Configuration" }).count()).toBe(0);
    await page.getByRole("alert").filter({ hasText: "admin" }).waitFor({ timeout: 10_000 });
    await h.shot(page, "config-viewer");
    await page.context().close();
  }, SLOW);
});
