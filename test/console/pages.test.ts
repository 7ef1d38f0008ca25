// The console's first pages in a real browser against the demo plant: login per role, the overview's
// live throughput, the live tag table and its "only Bad" filter when a device stops, a tag's trend.
// Timeouts are generous: a page load in chromium takes seconds on a loaded two-core machine.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { authOf } from "../../server/auth/index.ts";
import { waitFor } from "../helpers/index.ts";
import { startConsoleHarness, type ConsoleHarness } from "./harness.ts";

let h: ConsoleHarness;
beforeAll(async () => {
  h = await startConsoleHarness(import.meta.file);
}, 120_000);
afterAll(async () => h?.close());
afterEach(() => h.checkConsole());

const SLOW = 60_000;

describe("login", () => {
  // these pages stay logged in for the tests below (h.as)
  for (const role of ["viewer", "operator", "admin"] as const) {
    it(`logs a ${role} in from the dialog shown on the first visit, and shows who is logged in`, async () => {
      const page = await h.as(role);
      expect(await page.getByTestId("who").textContent()).toBe(`${role} (${role})`);
      await h.shot(page, `logged-in-${role}`);
    }, SLOW);
  }

  it("refuses a wrong password in the dialog with the API's message, and stays on the dialog", async () => {
    const page = await h.open(null, "/");
    h.allowErrors(page, /401/);
    const dialog = page.getByRole("dialog");
    await dialog.locator("input[name=user]").fill("admin");
    await dialog.locator("input[name=password]").fill("wrong");
    await dialog.getByRole("button", { name: "Log in" }).click();
    await dialog.getByRole("alert").filter({ hasText: "wrong" }).waitFor();
    expect(await page.getByTestId("who").count()).toBe(0);
    await h.shot(page, "login-refused");
    await page.context().close();
  }, SLOW);
});

describe("session end", () => {
  it("shows the login dialog over the page when the API answers 401, and carries on the same page after the login", async () => {
    const page = await h.as("operator");
    await h.go(page, "/devices");
    h.allowErrors(page, /401/);
    await page.getByTestId("driver-plc").waitFor();
    await page.evaluate(() => ((window as unknown as { kept: string }).kept = "same document"));
    // the gateway refuses the session (as it does once the token has expired): the next poll gets 401
    let refused = 0;
    await page.route("**/api/drivers", async (route) => {
      if (refused++ === 0) await route.fulfill({ status: 401, contentType: "application/json", body: JSON.stringify({ error: "token_expired", message: "the token has expired", field: null }) });
      else await route.continue();
    });
    await page.getByRole("dialog").getByText("session has ended").waitFor({ timeout: 15_000 });
    // the page stays underneath the dialog
    expect(await page.getByTestId("driver-plc").isVisible()).toBe(true);
    await h.shot(page, "session-ended-dialog");
    await h.login(page, "operator");
    await page.waitForFunction(() => !document.querySelector("[role=dialog]"));
    await waitFor(() => refused >= 2, "the poll retried after the login");
    expect(page.url()).toEndWith("/devices");
    expect(await page.evaluate(() => (window as unknown as { kept?: string }).kept)).toBe("same document");
    await page.unrouteAll();
  }, SLOW);
});

describe("overview", () => {
  it("shows a non-zero frames per second figure, live", async () => {
    const page = await h.as("viewer");
    await h.go(page, "/");
    await page.waitForFunction(() => Number.parseFloat(document.querySelector("[data-testid=fps]")?.textContent ?? "0") > 0, undefined, { timeout: 15_000 });
    const head1 = Number((await page.getByTestId("head").textContent())!.replace(/\D/g, ""));
    await page.waitForFunction((h1) => Number(document.querySelector("[data-testid=head]")!.textContent!.replace(/\D/g, "")) > h1, head1, { timeout: 10_000 });
    await h.shot(page, "overview");
  }, SLOW);

  it("fits a phone-width screen with the navigation behind a menu button", async () => {
    const page = await h.as("viewer");
    await page.setViewportSize({ width: 390, height: 800 });
    const nav = page.getByRole("navigation", { name: "Pages" });
    expect(await nav.isVisible()).toBe(false);
    await page.getByRole("button", { name: "Menu" }).click();
    expect(await nav.isVisible()).toBe(true);
    await h.shot(page, "overview-phone-menu");
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
    await page.getByRole("button", { name: "Menu" }).click();
    await page.setViewportSize({ width: 1280, height: 800 });
  }, SLOW);
});

describe("devices", () => {
  it("shows each driver's state and advice, and restart buttons to an admin only", async () => {
    const viewer = await h.as("viewer");
    await h.go(viewer, "/devices");
    await viewer.getByTestId("driver-plc").waitFor();
    expect(await viewer.getByRole("button", { name: "Restart" }).count()).toBe(0);
    const admin = await h.as("admin");
    await h.go(admin, "/devices");
    const plc = admin.getByTestId("driver-plc");
    await plc.getByTestId("state").filter({ hasText: "Active" }).waitFor({ timeout: 15_000 });
    await plc.getByRole("button", { name: "Restart" }).click();
    await plc.getByTestId("restarts").filter({ hasText: "1" }).waitFor({ timeout: 10_000 });
    await h.shot(admin, "devices-admin");
  }, SLOW);
});

describe("tags", () => {
  it("updates a value in the table live, and 'only Bad' shows the PLC's tags once the PLC stops", async () => {
    const page = await h.as("viewer");
    await h.go(page, "/tags");
    const row = page.locator('tr[data-tag="line1/boiler/temperature"] [data-testid=value]');
    await row.waitFor();
    await page.waitForFunction(() => /\d/.test(document.querySelector('tr[data-tag="line1/boiler/temperature"] [data-testid=value]')?.textContent ?? ""), undefined, { timeout: 15_000 });
    const first = await row.textContent();
    await page.waitForFunction((v) => document.querySelector('tr[data-tag="line1/boiler/temperature"] [data-testid=value]')?.textContent !== v, first, { timeout: 10_000 });
    await h.shot(page, "tags-live");

    await page.getByTestId("only-bad").check();
    expect(await page.locator('tr[data-tag="line1/boiler/temperature"]').count()).toBe(0);
    // the device stops: the demo PLC's Modbus server goes away, its driver fails, its tags turn Bad
    const plc = h.g.gw.ctx.services!().find((s) => s.name === "demo-plc")!;
    await plc.stop();
    await page.locator('tr[data-tag="line1/boiler/temperature"]').waitFor({ timeout: 20_000 });
    expect(await page.locator('tr[data-tag="line1/boiler/temperature"] [data-quality]').getAttribute("data-quality")).toBe("bad");
    await h.shot(page, "tags-only-bad");
    await plc.start();
    // the next test writes through this driver: wait until it reads the device again
    await waitFor(() => h.g.gw.ctx.drivers.status().find((d) => d.id === "plc")?.state === "Active", "the plc driver Active again", 30_000);
  }, SLOW);

  it("lists a command written to the tag in its recent commands as it happens, with who and the result", async () => {
    const page = await h.as("operator");
    await h.go(page, "/tags/line1/boiler/setpoint");
    await page.getByText("No command was written to this tag yet").or(page.locator("table.cmds")).first().waitFor({ timeout: 15_000 });
    const sessions = authOf(h.g.gw.ctx).sessions;
    const { token } = await sessions.sign(sessions.user("operator")!);
    const r = await fetch(`${h.g.url}/api/tags/line1/boiler/setpoint`, { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ value: 77 }) });
    expect(r.status).toBe(200);
    const row = page.locator("table.cmds tbody tr").filter({ hasText: "operator" }).filter({ hasText: "77" });
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain("ok");
    await h.shot(page, "tag-commands");
  }, SLOW);

  it("draws a tag's trend with points from the history buckets", async () => {
    const page = await h.as("viewer");
    await h.go(page, "/tags/demo/ambient/temperature");
    const trend = page.locator(".trend");
    await trend.waitFor({ timeout: 15_000 });
    await page.waitForFunction(() => Number(document.querySelector(".trend")?.getAttribute("data-points")) > 0, undefined, { timeout: 15_000 });
    expect(await page.locator(".trend canvas").count()).toBeGreaterThan(0);
    await page.getByTestId("preset-1h").click();
    await page.getByTestId("render-ms").waitFor();
    await h.shot(page, "tag-trend");
  }, SLOW);
});
