// Security of the built-in OPC UA server: its certificate created in the data directory, client
// certificates refused until an operator moves them from rejected/ to trusted/, Basic256Sha256
// SignAndEncrypt sessions, no anonymous sessions unless configured, X509 user certificates for writes.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readdirSync, readFileSync, renameSync, copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { AttributeIds, DataType, MessageSecurityMode, OPCUAClient, SecurityPolicy, UserTokenType } from "node-opcua";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../../helpers/index.ts";
import { connect, usersYaml } from "./helpers.ts";

let t: TestGateway;
let url: string;
let serverPki: string;
const pki = tempDir("edge-opcua-sec-");

beforeAll(async () => {
  const port = await freePort();
  t = await startGateway({
    "gateway.yml": ["opcua:", "  enabled: true", `  port: ${port}`, "  hostname: 127.0.0.1", "  allowAnonymous: false", await usersYaml([{ name: "operator", password: "op-secret", rights: ["read", "write"] }])].join("\n"),
    "drivers.yml": "drivers:\n  - { id: sink, type: simulator, config: { intervalMs: 3600000 } }\n",
    "variables.yml": "tags:\n  - { tag: cell/setpoint, driver: sink, type: float64, access: RW }\n",
  });
  url = `opc.tcp://127.0.0.1:${port}/UA/edge`;
  serverPki = join(t.gw.ctx.config.gateway.dataDir, "pki", "opcua-server");
}, 60_000);

afterAll(async () => {
  await t?.stop();
  pki.cleanup();
});

/** PEM -> DER: the base64 body between the BEGIN/END lines */
const pemToDer = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
const pemFiles = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => /\.(pem|der)$/.test(f)) : []);

describe("opcua server security", () => {
  it("creates its certificate in the data directory's PKI folder on first start", () => {
    expect(existsSync(join(serverPki, "own", "certs", "certificate.pem"))).toBe(true);
    expect(existsSync(join(serverPki, "own", "private", "private_key.pem"))).toBe(true);
  }, 60_000); // SignAndEncrypt handshakes are slow on a loaded 2-core machine

  it("offers None and Basic256Sha256 Sign and SignAndEncrypt endpoints", async () => {
    const client = OPCUAClient.create({ endpointMustExist: false, connectionStrategy: { maxRetry: 0 } });
    await client.connect(url);
    try {
      const eps = (await client.getEndpoints()).map((e) => `${e.securityPolicyUri?.split("#")[1]}/${MessageSecurityMode[e.securityMode]}`);
      expect(eps.sort()).toEqual(["Basic256Sha256/Sign", "Basic256Sha256/SignAndEncrypt", "None/None"]);
    } finally {
      await client.disconnect();
    }
  }, 60_000); // SignAndEncrypt handshakes are slow on a loaded 2-core machine

  it("refuses anonymous sessions unless allowAnonymous is set", async () => {
    await expect(connect(url, { pkiDir: pki.path })).rejects.toThrow(/ANONYMOUS user token policy|BadIdentityTokenInvalid|BadIdentityTokenRejected/);
  }, 60_000); // SignAndEncrypt handshakes are slow on a loaded 2-core machine

  it("rejects an unknown client certificate into rejected/ and accepts it once moved to trusted/", async () => {
    const user = { name: "operator", password: "op-secret" };
    await expect(connect(url, { pkiDir: pki.path, user, mode: "SignAndEncrypt" })).rejects.toThrow();
    const rejected = join(serverPki, "rejected");
    const [file] = await waitFor(() => pemFiles(rejected).length > 0 && pemFiles(rejected), "the client certificate in rejected/");
    // what an operator does to trust a client
    renameSync(join(rejected, file!), join(serverPki, "trusted", "certs", file!));
    const c = await waitFor(() => connect(url, { pkiDir: pki.path, user, mode: "SignAndEncrypt" }), "a SignAndEncrypt session with the trusted certificate", 30_000, 300);
    try {
      expect(c.client.securityMode).toBe(MessageSecurityMode.SignAndEncrypt);
      expect(c.client.securityPolicy).toBe(SecurityPolicy.Basic256Sha256);
      const dv = await c.session.read({ nodeId: "ns=1;s=cell/setpoint", attributeId: AttributeIds.DataType });
      expect(dv.value.value.value).toBe(DataType.Double);
    } finally {
      await c.close();
    }
  }, 60_000); // SignAndEncrypt handshakes are slow on a loaded 2-core machine

  it("lets a session authenticated by a trusted X509 user certificate write, as cert:<subject>", async () => {
    const own = join(pki.path, "client", "own");
    const certPem = readFileSync(join(own, "certs", "client_certificate.pem"), "utf8");
    const keyPem = readFileSync(join(own, "private", "private_key.pem"), "utf8");
    const usersTrusted = join(serverPki, "users", "trusted", "certs");
    mkdirSync(usersTrusted, { recursive: true });
    copyFileSync(join(own, "certs", "client_certificate.pem"), join(usersTrusted, "edge-test-user.pem"));
    const identity = { type: UserTokenType.Certificate as const, certificateData: pemToDer(certPem), privateKey: keyPem };
    const c = await waitFor(() => connect(url, { pkiDir: pki.path, identity, mode: "SignAndEncrypt" }), "a session with the X509 user", 30_000, 300);
    try {
      // the write is allowed (a command in the log, actor from the certificate); the simulator
      // cannot execute it, so the driver's refusal comes back as a Bad code other than access denied
      const head = t.gw.ctx.log.head;
      const status = await c.session.write({ nodeId: "ns=1;s=cell/setpoint", attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Double, value: 12.5 } } });
      expect(status.name).not.toBe("BadUserAccessDenied");
      let cmd: unknown = null;
      for await (const f of t.gw.ctx.log.read({ from: head + 1, kinds: ["cmd"] })) cmd ??= f;
      expect(cmd).toMatchObject({ tag: "cell/setpoint", origin: "opcua", actor: expect.stringMatching(/^cert:/), value: 12.5 });
    } finally {
      await c.close();
    }
  }, 60_000); // SignAndEncrypt handshakes are slow on a loaded 2-core machine
});
