// The write dialog in a real browser against the demo plant: an operator writes a setpoint, sees the ack
// in words and the read-back, and the demo PLC's register holds the value; a value past the tag's limit is
// refused in the dialog before anything is sent; a viewer sees the write controls disabled and the API
// refuses a viewer's token.
import { describe, expect, it } from "bun:test";
import { consoleHarness, SLOW } from "./ops-harness.ts";
import { readPlc } from "./plc-read.ts";

const h = consoleHarness(import.meta.file);

const SETPOINT = "line1/boiler/setpoint"; // float32 at holding 20, min 20, max 120

describe("write dialog", () => {
  it("lets an operator write a setpoint from its tag page: the ack says Written, the read-back shows it, and the PLC's register holds it", async () => {
    const page = await h.open("operator", `/tags/${SETPOINT}`);
    await page.getByTestId("write-link").click();
    const dialog = page.getByTestId("write-dialog");
    await dialog.waitFor();
    await dialog.locator("input[name=value]").fill("87.5");
    await dialog.getByRole("button", { name: "Review…" }).click();
    expect(await dialog.getByTestId("confirm-value").textContent()).toBe("87.5 degC");
    await h.shot(page, "write-confirm");
    await dialog.getByRole("button", { name: "Confirm write" }).click();
    await dialog.getByTestId("ack-title").filter({ hasText: "Written" }).waitFor({ timeout: 15_000 });
    expect(await dialog.getByTestId("ack-code").textContent()).toBe("ok");
    await dialog.getByTestId("read-back").filter({ hasText: "87.5" }).waitFor({ timeout: 10_000 });
    await h.shot(page, "write-acked");
    expect(await readPlc(h.g, 20, { type: "float32" })).toBe(87.5);
    await page.context().close();
  }, SLOW);

  it("refuses a value above the tag's maximum in the dialog, naming the limit, with nothing sent", async () => {
    const before = (await h.g.gw.ctx.commands.list({ tag: SETPOINT })).length;
    const page = await h.open("operator", `/write?tag=${SETPOINT}`);
    const dialog = page.getByTestId("write-dialog");
    await dialog.locator("input[name=value]").fill("121");
    expect(await dialog.getByTestId("problem").textContent()).toBe("121 is above the tag's maximum 120");
    expect(await dialog.getByRole("button", { name: "Review…" }).isDisabled()).toBe(true);
    await h.shot(page, "write-over-max");
    expect((await h.g.gw.ctx.commands.list({ tag: SETPOINT })).length).toBe(before);
    await page.context().close();
  }, SLOW);

  it("shows a viewer the write buttons disabled, and the API refuses the viewer's token with 403", async () => {
    const page = await h.open("viewer", "/write");
    const button = page.getByTestId(`write-${SETPOINT}`);
    await button.waitFor();
    expect(await button.isDisabled()).toBe(true);
    await page.getByTestId("read-only-note").waitFor();
    await h.shot(page, "write-viewer");
    // a viewer's token straight at the API: the gateway refuses, whatever the page shows
    h.allowErrors(page, /status of 403/);
    const status = await page.evaluate(async (tag) => {
      const login = await fetch("/api/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user: "viewer", password: "viewer" }) });
      const { token } = await login.json();
      const r = await fetch(`/api/tags/${encodeURIComponent(tag)}`, { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ value: 50 }) });
      return { status: r.status, body: await r.json() };
    }, SETPOINT);
    expect(status).toMatchObject({ status: 403, body: { error: "insufficient_scope" } });
    expect(await readPlc(h.g, 20, { type: "float32" })).not.toBe(50);
    await page.context().close();
  }, SLOW);

  it("shows a write the gateway recorded but could not execute as refused, with its ack code in words", async () => {
    await h.g.gw.ctx.drivers.pause("plc");
    try {
      const page = await h.open(null, `/write?tag=${SETPOINT}`);
      h.allowErrors(page, /status of 409/);
      await h.login(page, "operator");
      const dialog = page.getByTestId("write-dialog");
      await dialog.locator("input[name=value]").fill("64");
      await dialog.getByRole("button", { name: "Review…" }).click();
      await dialog.getByRole("button", { name: "Confirm write" }).click();
      await dialog.getByTestId("ack-title").filter({ hasText: "Refused: not written" }).waitFor({ timeout: 15_000 });
      expect(await dialog.getByTestId("ack-code").textContent()).toBe("driver_not_running");
      expect(await dialog.getByTestId("ack").textContent()).toContain("the tag's driver is not running");
      await h.shot(page, "write-refused-driver-paused");
      await page.context().close();
    } finally {
      await h.g.gw.ctx.drivers.restart("plc");
    }
    expect(await readPlc(h.g, 20, { type: "float32" })).not.toBe(64);
  }, SLOW);
});
