// The OPC UA server's client certificates over HTTP on a running gateway: a client refused at its first
// SignAndEncrypt connect is listed as rejected with its thumbprint, an admin trusts it through the API, and
// its next connect is accepted; viewers see the list but cannot trust.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { MessageSecurityMode } from "node-opcua";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { connect } from "../bridges/opcua-server/helpers.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let url = "";
const pki = tempDir("edge-opcua-certs-");

beforeAll(async () => {
  const port = await freePort();
  g = await startGateway({
    "gateway.yml": [`auth: { hs256Secret: "${HS_SECRET}" }`, "watchConfig: false", "opcua:", "  enabled: true", `  port: ${port}`, "  hostname: 127.0.0.1", "  allowAnonymous: true"].join("\n"),
    "drivers.yml": "drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 3600000 } }\n",
    "variables.yml": "tags:\n  - { tag: cell/temp, driver: sim, type: float64 }\n",
  });
  url = `opc.tcp://127.0.0.1:${port}/UA/edge`;
}, 60_000);

afterAll(async () => {
  await g?.stop();
  pki.cleanup();
}, 30_000);

const call = async (method: string, path: string, scope: string) => {
  const r = await fetch(`${g.url}${path}`, { method, headers: { authorization: `Bearer ${await token(null, { claims: { scope } })}` } });
  return { status: r.status, body: (await r.json()) as any };
};

describe("OPC UA client certificates through the API", () => {
  it("lists a refused client as rejected, lets an admin trust it, and the client's next SignAndEncrypt connect is accepted", async () => {
    await expect(connect(url, { pkiDir: pki.path, mode: "SignAndEncrypt" })).rejects.toThrow();
    const clientCert = new X509Certificate(readFileSync(join(pki.path, "client", "own", "certs", "client_certificate.pem")));
    const thumbprint = clientCert.fingerprint.replaceAll(":", "").toLowerCase();
    const listed = await waitFor(async () => {
      const r = await call("GET", "/api/opcua/certificates", "read");
      return r.body.find?.((c: { thumbprint: string }) => c.thumbprint === thumbprint);
    }, "the client's certificate in the list");
    expect(listed).toMatchObject({ kind: "application", store: "rejected", expired: false, applicationUri: expect.stringContaining("urn:") });
    expect(listed.subject).toContain("CN=");

    expect(await call("POST", `/api/opcua/certificates/${thumbprint}/trust`, "read write")).toMatchObject({ status: 403, body: { error: "insufficient_scope" } });
    const trusted = await call("POST", `/api/opcua/certificates/${thumbprint}/trust`, "admin");
    expect(trusted).toMatchObject({ status: 200, body: { thumbprint, store: "trusted" } });
    expect((await call("GET", "/api/opcua/certificates", "read")).body.find((c: { thumbprint: string }) => c.thumbprint === thumbprint).store).toBe("trusted");

    // accepted at once: no retry loop, the manager's own index moved the certificate
    const c = await connect(url, { pkiDir: pki.path, mode: "SignAndEncrypt" });
    try {
      expect(c.client.securityMode).toBe(MessageSecurityMode.SignAndEncrypt);
    } finally {
      await c.close();
    }
  }, 90_000); // SignAndEncrypt handshakes are slow on a loaded 2-core machine

  it("answers 404 naming the thumbprint for a certificate it does not hold, and 400 for one that is not hex", async () => {
    expect(await call("POST", `/api/opcua/certificates/${"ab".repeat(20)}/trust`, "admin")).toMatchObject({ status: 404, body: { error: "unknown_certificate", field: "thumbprint" } });
    expect((await call("POST", "/api/opcua/certificates/zz/trust", "admin")).status).toBe(400);
  });
});
