// Certificate trust stays with the driver that was told to trust: two OPC UA client drivers on one PKI
// folder against a SignAndEncrypt-only node-opcua server whose certificate that folder does not trust.
// The lenient one (trustServerCertificate) connects; the strict one is still refused afterwards; nothing
// lands in trusted/certs; trusting by hand (moving the file from rejected/ into trusted/certs) is reported.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { DataType, MessageSecurityMode, OPCUACertificateManager, OPCUAServer, SecurityPolicy, Variant } from "node-opcua";
import { ensureClientCertificate } from "../../drivers/opcua/session.ts";
import type { EventFrame } from "../../schemas/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";

const dir = tempDir("edge-opcua-trust-");
/** the one PKI folder both drivers use (as the default <dataDir>/pki/opcua-client is shared) */
const pki = join(dir.path, "client-pki");
const serverPki = join(dir.path, "server-pki");
let server: OPCUAServer;
let t: TestGateway;

const pemToDer = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
const certFiles = (folder: string) => (existsSync(folder) ? readdirSync(folder).filter((f) => /\.(pem|der)$/.test(f)) : []);
const status = (id: string) => t.gw.ctx.drivers.status().find((d) => d.id === id);
const latest = (tag: string) => t.gw.ctx.log.latest().get(tag);

async function driverEvents(type: string): Promise<EventFrame[]> {
  const found: EventFrame[] = [];
  for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if ((f as EventFrame).type === type) found.push(f as EventFrame);
  return found;
}

beforeAll(async () => {
  const port = await freePort();
  const cm = new OPCUACertificateManager({ rootFolder: serverPki, automaticallyAcceptUnknownCertificate: false });
  await cm.initialize();
  // the plant's operator trusts the gateway's client certificate (one certificate: one PKI folder)
  await cm.trustCertificate(pemToDer(readFileSync(await ensureClientCertificate(pki), "utf8")));
  server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "/UA/plant",
    serverCertificateManager: cm,
    securityPolicies: [SecurityPolicy.Basic256Sha256],
    securityModes: [MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: true,
    isAuditing: false,
  });
  await server.initialize();
  const as = server.engine.addressSpace!;
  const v = as.getOwnNamespace().addVariable({ organizedBy: as.rootFolder.objects, browseName: "Temp", nodeId: "s=Temp", dataType: DataType.Double, minimumSamplingInterval: 0 });
  v.setValueFromSource(new Variant({ dataType: DataType.Double, value: 21.5 }));
  await server.start();
  const config = `securityMode: SignAndEncrypt, securityPolicy: Basic256Sha256, pkiDir: "${pki}", samplingIntervalMs: 0, publishingIntervalMs: 50, connectAttempts: 1`;
  t = await startGateway({
    "gateway.yml": "drivers: { backoffBaseMs: 100, backoffMaxMs: 300 }",
    "endpoints.yml": `endpoints:\n  plant: { url: "opc.tcp://127.0.0.1:${port}/UA/plant", timeoutMs: 2000 }\n`,
    "drivers.yml": [
      "drivers:",
      `  - { id: lenient, type: opcua, endpoint: plant, config: { trustServerCertificate: true, ${config} } }`,
      `  - { id: strict, type: opcua, endpoint: plant, config: { ${config} } }`,
    ].join("\n"),
    "variables.yml": [
      "tags:",
      '  - { tag: lenient/temp, driver: lenient, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
      '  - { tag: strict/temp, driver: strict, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
    ].join("\n"),
  });
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await server?.shutdown(0).catch(() => undefined);
  dir.cleanup();
}, 30_000);

describe("trustServerCertificate", () => {
  it("lets only its own driver connect, writes nothing to trusted/certs, and leaves the strict driver on the same PKI refused", async () => {
    await waitFor(() => latest("lenient/temp")?.value === 21.5, "a value through the lenient driver", 20_000);
    // the strict driver fails again after the lenient one connected: nothing it could read was changed
    const errorsThen = (await waitFor(() => status("strict")?.errors, "the strict driver's first failure", 20_000)) as number;
    await waitFor(() => (status("strict")?.errors ?? 0) > errorsThen, "a later attempt of the strict driver", 20_000);
    expect(status("strict")!.lastError).toContain("certificate is not trusted");
    expect(latest("strict/temp")?.value ?? null).toBeNull();
    expect(certFiles(join(pki, "trusted", "certs"))).toEqual([]);
    // the acceptance is on record, naming the driver
    const accepted = await waitFor(() => driverEvents("opcua.certificate_accepted_untrusted").then((e) => e.length > 0 && e), "the acceptance event");
    expect(accepted[0]!.source).toBe("lenient");
    expect(String(accepted[0]!.data?.reason)).toContain("for driver 'lenient' only");
  }, 60_000);

  it("trusts the certificate for the strict driver once someone moves it from rejected/ into trusted/certs, and reports it", async () => {
    const rejected = certFiles(join(pki, "rejected"));
    expect(rejected.length).toBeGreaterThan(0);
    mkdirSync(join(pki, "trusted", "certs"), { recursive: true });
    for (const f of rejected) renameSync(join(pki, "rejected", f), join(pki, "trusted", "certs", f));
    await waitFor(() => latest("strict/temp")?.value === 21.5, "a value through the strict driver", 20_000);
    const trusted = await waitFor(() => driverEvents("opcua.certificate_trusted").then((e) => e.find((x) => x.source === "strict")), "the trust event");
    expect(trusted.data).toMatchObject({ pkiDir: pki });
    expect(String(trusted.data?.reason)).toContain("where someone moved it after it was refused");
  }, 60_000);
});
