// The console's plugins page in a real browser: an admin uploads a signed plugin archive and sees it
// loaded with its signer; a new version swaps in; Roll back returns to the version it replaced; a
// tampered archive is refused with the failed check; a decoder plugin shows its process (not started,
// running with its batches, restarting after crashes in a row with the last error). Timeouts are
// generous (two loaded cores).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/index.ts";
import { counterSource, LENGTH_DECODER, newKey, writePlugin, type PluginSpec } from "../drivers/plugins/fixtures.ts";
import { startConsoleHarness, type ConsoleHarness } from "./harness.ts";

const key = newKey("acme");
const tmp = tempDir("console-plugins-");
let h: ConsoleHarness;
beforeAll(async () => {
  // a decoder's backoff after crashes in a row follows the drivers': 15 s, so that the page shows it
  const files = { authorized_keys: `${key.publicLine}\n`, "gateway.yml": "drivers: { backoffBaseMs: 15000, backoffMaxMs: 15000 }" };
  h = await startConsoleHarness(import.meta.file, { files });
}, 120_000);
afterAll(async () => {
  await h?.close();
  tmp.cleanup();
});
afterEach(() => h.checkConsole());

const SLOW = 60_000;

/** A signed plugin folder (the counter driver unless `spec` says) as a .tar file for the file input. */
async function archive(version: string, tamper = false, spec: Omit<PluginSpec, "version"> = { name: "counter", source: counterSource() }): Promise<{ name: string; mimeType: string; buffer: Buffer }> {
  const dir = await writePlugin(join(tmp.path, `${spec.name}-${version}`), { ...spec, version }, key);
  if (tamper) appendFileSync(join(dir, "index.js"), "\n// changed after signing\n");
  const files: Record<string, Uint8Array> = {};
  for (const f of ["plugin.toml", "plugin.sig", "index.js"]) files[`${spec.name}/${f}`] = readFileSync(join(dir, f));
  return { name: `${spec.name}-${version}.tar`, mimeType: "application/x-tar", buffer: Buffer.from(await new Bun.Archive(files).bytes()) };
}

describe("plugins page", () => {
  it("uploads a signed plugin, swaps in version 2, rolls back to version 1, and refuses a tampered upload with its reason", async () => {
    const page = await h.as("admin");
    await h.go(page, "/plugins");
    await page.getByTestId("upload-archive").setInputFiles(await archive("1.0.0"));
    const row = page.getByTestId("plugin-counter");
    await row.getByTestId("version").filter({ hasText: "1.0.0" }).waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain("acme");
    await page.getByTestId("upload-archive").setInputFiles(await archive("2.0.0"));
    await page.getByTestId("notice").filter({ hasText: "counter 2.0.0 active (swapped from 1.0.0" }).waitFor({ timeout: 15_000 });
    await row.getByTestId("version").filter({ hasText: "2.0.0" }).waitFor();
    await row.getByRole("button", { name: "Roll back" }).click();
    await page.getByTestId("notice").filter({ hasText: "counter rolled back to 1.0.0" }).waitFor({ timeout: 15_000 });
    await row.getByTestId("version").filter({ hasText: "1.0.0" }).waitFor();
    // the browser logs the refused request as an error: expected here
    h.allowErrors(page, /422/);
    await page.getByTestId("upload-archive").setInputFiles(await archive("3.0.0", true));
    await page.getByText("refused: checksum: index.js").first().waitFor({ timeout: 15_000 });
    await h.shot(page, "plugins-admin");
  }, SLOW);

  it("shows a decoder plugin's process: not started, running with its batches, then restarting after crashes in a row with the last error", async () => {
    const page = await h.as("admin");
    await h.go(page, "/plugins");
    await page.getByTestId("upload-archive").setInputFiles(await archive("1.0.0", false, { name: "lengths", kind: "decoder", source: LENGTH_DECODER }));
    const process = page.getByTestId("plugin-lengths").getByTestId("decoder");
    await process.filter({ hasText: "not started" }).waitFor({ timeout: 15_000 });
    // what an MQTT source with `decoder: lengths` calls for a burst of messages
    const decoder = h.g.gw.ctx.plugins!.decoder("lengths")!;
    const text = new TextEncoder();
    await decoder.decode([text.encode("ab"), text.encode("abc")]);
    await process.filter({ hasText: /process \d+ running · 1 batch, 0 crashes/ }).waitFor({ timeout: 15_000 });
    await decoder.decode([text.encode("crash")]).catch(() => undefined);
    await decoder.decode([text.encode("crash")]).catch(() => undefined);
    await process.filter({ hasText: /restarting in \d+ s after crashes in a row .* 1 batch, 2 crashes/ }).waitFor({ timeout: 15_000 });
    expect(await page.getByTestId("plugin-lengths").getByTestId("decoder-error").textContent()).toContain("exit code 3");
    await h.shot(page, "plugins-decoder");
  }, SLOW);
});
