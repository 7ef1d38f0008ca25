// Modbus/TCP Security (tls+tcp://) against a real Modbus server behind a Node TLS front that requires a
// client certificate, with certificates made by openssl in the test: the handshake succeeds with the
// right files; an unknown CA, an expired server certificate, a hostname mismatch and a refused client
// certificate each fail with an error naming the certificate and the reason; a gateway whose CA file
// was wrong recovers once the file is fixed (the files are read at every connection attempt).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ModbusConnection } from "../../drivers/modbus/client.ts";
import { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { Quality } from "../../schemas/quality.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, type tempDir, waitFor } from "../helpers/index.ts";
import { gatewayDirWithCertificates, TlsFront } from "./tls-certs.ts";

let dir: ReturnType<typeof tempDir>;
let certs: string;
let plc: ModbusTcpServer;
let front: TlsFront;
let expiredFront: TlsFront;
let t: TestGateway | null = null;

beforeAll(async () => {
  ({ dir, certs } = gatewayDirWithCertificates());
  plc = new ModbusTcpServer({ size: 100 });
  plc.holding[5] = 1234;
  await plc.start();
  front = new TlsFront(certs, plc.port);
  await front.start();
  expiredFront = new TlsFront(certs, plc.port);
  await expiredFront.start("expired.pem");
}, 30_000);

afterAll(async () => {
  await t?.stop();
  await front?.stop();
  await expiredFront?.stop();
  await plc?.stop();
  dir?.cleanup();
});

const files = (over: Record<string, string> = {}) => ({ ca: join(certs, "ca.pem"), cert: join(certs, "client.pem"), key: join(certs, "client.key"), rejectUnauthorized: true, ...over });

/** The error of one read through a fresh TLS connection. */
async function readError(port: number, tls: ReturnType<typeof files>): Promise<string> {
  const c = new ModbusConnection("127.0.0.1", port, 2000, tls);
  try {
    await c.readRegisters(1, "holding", 5, 1);
    return "no error";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  } finally {
    c.close();
  }
}

describe("modbus tls+tcp://", () => {
  it("reads registers through the TLS handshake with the CA, client certificate and key from files", async () => {
    const c = new ModbusConnection("127.0.0.1", front.port, 2000, files());
    expect(await c.readRegisters(1, "holding", 5, 1)).toEqual([1234]);
    c.close();
  });

  it("refuses a server certificate not signed by the configured CA, naming the CA file and 'unknown CA'", async () => {
    const e = await readError(front.port, files({ ca: join(certs, "other-ca.pem") }));
    expect(e).toContain("ModbusConnectError");
    expect(e).toContain("unknown CA");
    expect(e).toContain("other-ca.pem");
  });

  it("refuses an expired server certificate, saying it has expired", async () => {
    expect(await readError(expiredFront.port, files())).toContain("the server's certificate has expired");
  });

  it("refuses a server certificate for another name, saying hostname mismatch", async () => {
    expect(await readError(front.port, files({ servername: "plc.example" }))).toContain("hostname mismatch");
  });

  it("says the server refused our client certificate when it is signed by a CA the server does not trust, naming the file", async () => {
    const e = await readError(front.port, files({ cert: join(certs, "client-other.pem") }));
    expect(e).toContain("refused our client certificate");
    expect(e).toContain("client-other.pem");
  });

  it("names a missing certificate file and never the key's content", async () => {
    const e = await readError(front.port, files({ key: join(certs, "missing.key") }));
    expect(e).toContain("cannot read the client key");
    expect(e).toContain("missing.key");
  });

  it("says the client key does not belong to the client certificate, naming both files and never the key's content", async () => {
    const e = await readError(front.port, files({ key: join(certs, "server.key") }));
    expect(e).toContain("ModbusConnectError");
    expect(e).toContain(`the client key ${join(certs, "server.key")} does not belong to the client certificate ${join(certs, "client.pem")}`);
    expect(e).not.toContain("PRIVATE KEY");
    expect(e).not.toContain("KEY_VALUES_MISMATCH");
  });

  it("names a CA file that holds no certificate", async () => {
    writeFileSync(join(certs, "garbage-ca.pem"), "not a certificate\n");
    expect(await readError(front.port, files({ ca: join(certs, "garbage-ca.pem") }))).toContain(`the CA file ${join(certs, "garbage-ca.pem")} holds no PEM certificate`);
  });

  it("names a refused connection's address once", async () => {
    const c = new ModbusConnection("127.0.0.1", await freePort(), 2000, files());
    const e = await c.readRegisters(1, "holding", 5, 1).then(() => "no error", (err: Error) => err.message);
    c.close();
    expect(e).toContain("ECONNREFUSED");
    expect(e.split(`connect to 127.0.0.1:`).length).toBe(2);
  });

  it("shows the handshake failure in the driver state and /readyz, retries with backoff, and reads Good values once the CA file is fixed", async () => {
    copyFileSync(join(certs, "other-ca.pem"), join(certs, "trusted.pem"));
    t = await startGateway(
      {
        "endpoints.yml": `endpoints:\n  plc: { url: "tls+tcp://127.0.0.1:${front.port}", timeoutMs: 1000, tls: { ca: certs/trusted.pem, cert: certs/client.pem, key: certs/client.key } }\n`,
        "drivers.yml": `drivers:\n  - { id: plc, type: modbus, endpoint: plc, config: { intervalMs: 50, failuresBeforeRestart: 1 } }\n`,
        "variables.yml": `tags:\n  - { tag: line1/pv, driver: plc, type: uint16, address: { area: holding, address: 5 } }\n`,
      },
      { keepDir: dir.path },
    );
    type Readyz = { components: { drivers: { reasons: string[] } } };
    const reason = await waitFor(async () => ((await (await fetch(`${t!.url}/readyz`)).json()) as Readyz).components.drivers.reasons.find((r) => r.includes("unknown CA")), "the unknown CA in /readyz", 15_000, 50);
    expect(reason).toContain("certs/trusted.pem");
    expect(reason).toMatch(/driver plc is (Backoff|Error)/);
    copyFileSync(join(certs, "ca.pem"), join(certs, "trusted.pem"));
    await waitFor(async () => {
      for await (const f of t!.gw.ctx.log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === "line1/pv" && f.quality === Quality.Good && f.value === 1234) return true;
      return false;
    }, "a Good value read over TLS after the CA file was fixed", 20_000, 100);
    expect(t.gw.ctx.drivers.status()[0]!.state).toBe("Active");
  }, 40_000);

  it("retries a driver in Fault at once when its certificate file is fixed on disk, not after the Fault retry's 30 s", async () => {
    await t?.stop();
    copyFileSync(join(certs, "other-ca.pem"), join(certs, "fault-ca.pem"));
    t = await startGateway(
      {
        "gateway.yml": "drivers: { backoffBaseMs: 50, backoffMaxMs: 30000, faultAfterCrashes: 2 }\n",
        "endpoints.yml": `endpoints:\n  plc: { url: "tls+tcp://127.0.0.1:${front.port}", timeoutMs: 1000, tls: { ca: certs/fault-ca.pem, cert: certs/client.pem, key: certs/client.key } }\n`,
        "drivers.yml": `drivers:\n  - { id: plc, type: modbus, endpoint: plc, config: { intervalMs: 50, failuresBeforeRestart: 1 } }\n`,
        "variables.yml": `tags:\n  - { tag: line1/pv, driver: plc, type: uint16, address: { area: holding, address: 5 } }\n`,
      },
      { keepDir: dir.path },
    );
    const plcState = () => t!.gw.ctx.drivers.status()[0];
    await waitFor(() => plcState()?.state === "Fault" && plcState()!.lastError?.includes("unknown CA"), "the driver in Fault for the unknown CA", 15_000, 20);
    const fixedAt = performance.now();
    copyFileSync(join(certs, "ca.pem"), join(certs, "fault-ca.pem"));
    await waitFor(() => plcState()?.state === "Active", "the driver Active after the CA file was fixed", 5000, 20);
    expect(performance.now() - fixedAt).toBeLessThan(5000);
  }, 40_000);
});
