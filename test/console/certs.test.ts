// The Bridges page in a real browser: an OPC UA client with its own certificate is refused at its first
// SignAndEncrypt connect, shows up as rejected on the page, an admin trusts it with the page's button, and
// the client's next connect is accepted; a viewer sees the button disabled. The Modbus slave and MQTT
// cards say how to turn them on when they are off.
import { afterAll, describe, expect, it } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MessageSecurityMode } from "node-opcua";
import { consoleHarness } from "./ops-harness.ts";
import { connect } from "../bridges/opcua-server/helpers.ts";
import { freePort, tempDir } from "../helpers/index.ts";

let url = "";
const pki = tempDir("edge-console-certs-");
const h = consoleHarness(import.meta.file, async () => {
  const port = await freePort();
  url = `opc.tcp://127.0.0.1:${port}/UA/edge`;
  return { files: { "gateway.yml": `opcua:\n  enabled: true\n  port: ${port}\n  hostname: 127.0.0.1\n  allowAnonymous: true\n` } };
});
afterAll(() => pki.cleanup());

const SLOW = 90_000; // SignAndEncrypt handshakes are slow on a loaded 2-core machine

describe("Bridges page: OPC UA client certificates", () => {
  it("trusts a rejected client certificate from the page: the client's next SignAndEncrypt connect is accepted", async () => {
    await expect(connect(url, { pkiDir: pki.path, mode: "SignAndEncrypt" })).rejects.toThrow();
    const thumbprint = new X509Certificate(readFileSync(join(pki.path, "client", "own", "certs", "client_certificate.pem"))).fingerprint.replaceAll(":", "").toLowerCase();

    const viewer = await h.open("viewer", "/bridges");
    const viewerButton = viewer.getByTestId(`trust-${thumbprint}`);
    await viewerButton.waitFor({ timeout: 15_000 });
    expect(await viewerButton.isDisabled()).toBe(true);
    await viewer.context().close();

    const page = await h.open("admin", "/bridges");
    await page.getByTestId("bridge-opcua").filter({ hasText: "Sessions" }).waitFor({ timeout: 15_000 });
    expect(await page.getByTestId("bridge-modbus").textContent()).toContain("modbusSlave.enabled: true");
    const button = page.getByTestId(`trust-${thumbprint}`);
    await button.waitFor({ timeout: 15_000 });
    await h.shot(page, "bridges-rejected");
    page.once("dialog", (d) => void d.accept());
    await button.click();
    const row = page.locator("tbody tr", { hasText: thumbprint });
    await row.locator(".store.trusted").waitFor({ timeout: 15_000 });
    await h.shot(page, "bridges-trusted");
    await page.context().close();

    const c = await connect(url, { pkiDir: pki.path, mode: "SignAndEncrypt" });
    try {
      expect(c.client.securityMode).toBe(MessageSecurityMode.SignAndEncrypt);
    } finally {
      await c.close();
    }
  }, SLOW);
});
