// The Modbus inspector in a real browser (admin) against the demo PLC: the boiler pressure is stored low
// word first (CDAB) at holding 2; read through the gateway, the CDAB column shows the PLC's value and
// ABCD does not, and picking the cell gives the variables.yml entry with wordOrder LE.
import { describe, expect, it } from "bun:test";
import { consoleHarness, SLOW } from "./ops-harness.ts";
import { readPlc } from "./plc-read.ts";

const h = consoleHarness(import.meta.file);


describe("Modbus inspector", () => {
  it("decodes the demo PLC's float32 pressure in the right word order (CDAB) and gives its YAML", async () => {
    const page = await h.open("admin", "/modbus");
    await page.locator("select[name=driver] option[value=plc]").waitFor({ state: "attached", timeout: 15_000 });
    await page.locator("input[name=address]").fill("0");
    await page.locator("input[name=count]").fill("8");
    await page.getByRole("button", { name: "Read" }).click();
    await page.getByTestId("inspect-meta").waitFor({ timeout: 15_000 });
    // what the PLC holds right now, read as any master would (the simulated pressure drifts slowly)
    const pressure = (await readPlc(h.g, 2, { type: "float32", wordOrder: "LE" })) as number;
    const cell = (order: string) => page.locator(`[data-testid=decoded] td[data-address="2"][data-order=${order}]`);
    const cdab = Number(await cell("CDAB").textContent());
    expect(Math.abs(cdab - pressure)).toBeLessThan(0.5);
    // each order decodes the page's own two registers (its Raw column): ABCD high word first, CDAB low word first.
    // (Comparing ABCD with the pressure failed once: a low word close to the high word decodes near it either way.)
    const raw = async (address: number) => Number(await page.locator("[data-testid=decoded] tbody tr").filter({ has: page.locator(`th:text-is("${address}")`) }).locator("td").first().textContent());
    const [hi, lo] = [await raw(2), await raw(3)];
    const f32 = (first: number, second: number) => new DataView(new Uint16Array([second, first]).buffer).getFloat32(0, true);
    // the page shows 7 significant digits, 5 in exponent form (past 1e9, below 1e-4)
    const close = (shown: number, exact: number) => expect(Math.abs(shown - exact)).toBeLessThanOrEqual(Math.abs(exact) * 1e-4);
    close(Number(await cell("ABCD").textContent()), f32(hi, lo));
    close(cdab, f32(lo, hi));
    expect(await cell("CDAB").getAttribute("class")).toContain("plausible");
    await h.shot(page, "inspector-float32");
    await cell("CDAB").locator("button").click();
    await page.locator("input[name=tag]").fill("line1/boiler/pressure_copy");
    const yaml = await page.getByTestId("yaml").textContent();
    expect(yaml).toBe("  - tag: line1/boiler/pressure_copy\n    driver: plc\n    type: float32\n    address: { area: holding, address: 2, wordOrder: LE }\n");
    await h.shot(page, "inspector-picked");
    await page.context().close();
  }, SLOW);

  it("shows the device's refusal of an address it does not have", async () => {
    const page = await h.open(null, "/modbus");
    h.allowErrors(page, /status of 502/);
    await h.login(page, "admin");
    await page.locator("select[name=driver] option[value=plc]").waitFor({ state: "attached", timeout: 15_000 });
    await page.locator("input[name=address]").fill("65530");
    await page.locator("input[name=count]").fill("6");
    await page.getByRole("button", { name: "Read" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor({ timeout: 15_000 });
    expect(await alert.textContent()).toContain("exception 2");
    await h.shot(page, "inspector-refused");
    await page.context().close();
  }, SLOW);
});
