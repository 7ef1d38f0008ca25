// TLS of the MQTT source driver and the MQTT uplink against Debian's mosquitto with a TLS listener that
// requires a client certificate (certificates made by openssl in the test): the handshake succeeds with
// the CA, certificate and key from files; an unknown CA and an expired broker certificate are refused
// with an error naming the certificate and why, shown in the driver's state or the uplink's /readyz
// status; both recover once the certificate is fixed, without a restart (files re-read on reconnect).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, type tempDir, waitFor } from "../helpers/index.ts";
import { Mosquitto } from "../helpers/mosquitto.ts";
import { startRig, subscriber } from "../bridges/mqtt-north/harness.ts";
import { frames } from "../bridges/mqtt-north/harness.ts";
import { gatewayDirWithCertificates, mosquittoTlsListener } from "./tls-certs.ts";

let dir: ReturnType<typeof tempDir>;
let certs: string;
let broker: Mosquitto;
let tlsPort: number;
let t: TestGateway | null = null;

beforeAll(async () => {
  ({ dir, certs } = gatewayDirWithCertificates());
  tlsPort = await freePort();
  broker = await Mosquitto.start({ extra: mosquittoTlsListener(certs, tlsPort) });
}, 30_000);

afterAll(async () => {
  await t?.stop();
  await broker?.close();
  dir?.cleanup();
});

/** Restarts the broker presenting `cert` on its TLS listener. */
async function brokerPresents(cert: string): Promise<void> {
  await broker.stop();
  mosquittoTlsListener(certs, tlsPort, cert);
  await broker.restart();
}

describe("mqtt source driver over TLS", () => {
  it("names the unknown CA in the driver's state, and reads values once the CA file is fixed", async () => {
    copyFileSync(join(certs, "other-ca.pem"), join(certs, "trusted.pem"));
    t = await startGateway(
      {
        "endpoints.yml": `endpoints:\n  broker: { url: "mqtts://localhost:${tlsPort}", timeoutMs: 3000, tls: { ca: certs/trusted.pem, cert: certs/client.pem, key: certs/client.key } }\n`,
        "drivers.yml": `drivers:\n  - { id: src, type: mqtt, endpoint: broker, config: { mappings: [{ topic: "plant/+/temp", tag: "{1}/temp" }] } }\n`,
        "variables.yml": `tags:\n  - { tag: m1/temp, driver: src, type: float64 }\n`,
      },
      { keepDir: dir.path },
    );
    const err = await waitFor(() => t!.gw.ctx.drivers.status()[0]?.lastError?.includes("unknown CA") && t!.gw.ctx.drivers.status()[0]!.lastError!, "the unknown CA in the driver state", 15_000, 50);
    expect(err).toContain("certs/trusted.pem");
    copyFileSync(join(certs, "ca.pem"), join(certs, "trusted.pem"));
    // Connected: the handshake passed (Active comes with the first value)
    await waitFor(() => ["Connected", "Active"].includes(t!.gw.ctx.drivers.status()[0]?.state ?? ""), "the driver connected over TLS", 20_000, 50);
    const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    try {
      await waitFor(async () => {
        await pub.publishAsync("plant/m1/temp", "21.5", { qos: 1 });
        for await (const f of t!.gw.ctx.log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === "m1/temp" && f.value === 21.5) return true;
        return false;
      }, "a value over the TLS connection", 10_000, 200);
    } finally {
      await pub.endAsync(true);
      await t.stop();
      t = null;
    }
  }, 60_000);
});

describe("mqtt uplink over TLS", () => {
  it("publishes over TLS with a client certificate; says the broker's certificate expired in /readyz and recovers when the broker's certificate is renewed", async () => {
    const sub = await subscriber(broker.url, "default/gw1/batch");
    const rig = await startRig({ url: `mqtts://localhost:${tlsPort}`, ca: join(certs, "ca.pem"), cert: join(certs, "client.pem"), key: join(certs, "client.key"), reconnectMinMs: 100, reconnectMaxMs: 300 });
    try {
      await rig.log.append(frames(5));
      await waitFor(() => sub.offsets().length >= 5, "frames over TLS");
      await brokerPresents("expired.pem");
      await rig.log.append(frames(5, 5));
      const s = await waitFor(() => rig.bridge.status().reasons.find((r) => r.includes("has expired")), "the expired certificate in the status", 15_000, 50);
      expect(s).toContain(`TLS handshake with localhost:${tlsPort} failed: the server's certificate has expired`);
      expect(rig.bridge.status().state).toBe("degraded");
      await brokerPresents("server.pem");
      // the broker's acknowledgement of every frame (a subscriber would race the broker's restart)
      await waitFor(() => rig.bridge.publisher.acked >= 10, "the frames after the certificate was renewed acknowledged", 15_000);
      expect(rig.bridge.status().state).toBe("ok");
    } finally {
      await rig.close();
      await sub.close();
    }
  }, 60_000);

  it("names the CA file of an unknown CA and reconnects once the file is fixed, re-reading it", async () => {
    copyFileSync(join(certs, "other-ca.pem"), join(certs, "uplink-ca.pem"));
    const sub = await subscriber(broker.url, "default/gw1/batch");
    const rig = await startRig({ url: `mqtts://localhost:${tlsPort}`, ca: join(certs, "uplink-ca.pem"), cert: join(certs, "client.pem"), key: join(certs, "client.key"), reconnectMinMs: 100, reconnectMaxMs: 300 });
    try {
      await rig.log.append(frames(3));
      const s = await waitFor(() => rig.bridge.status().reasons.find((r) => r.includes("unknown CA")), "the unknown CA in the status", 15_000, 50);
      expect(s).toContain("uplink-ca.pem");
      expect(rig.logs.join("")).toContain("unknown CA");
      copyFileSync(join(certs, "ca.pem"), join(certs, "uplink-ca.pem"));
      await waitFor(() => sub.offsets().length >= 3, "frames once the CA file is fixed", 15_000);
    } finally {
      await rig.close();
      await sub.close();
    }
  }, 60_000);

  it("keeps reconnecting when the client key on disk no longer belongs to its certificate, or the CA file holds no certificate: says so in its log and reconnects with the files read before", async () => {
    copyFileSync(join(certs, "client.key"), join(certs, "uplink.key"));
    copyFileSync(join(certs, "ca.pem"), join(certs, "uplink-ca2.pem"));
    const sub = await subscriber(broker.url, "default/gw1/batch");
    const rig = await startRig({ url: `mqtts://localhost:${tlsPort}`, ca: join(certs, "uplink-ca2.pem"), cert: join(certs, "client.pem"), key: join(certs, "uplink.key"), reconnectMinMs: 100, reconnectMaxMs: 300 });
    try {
      await rig.log.append(frames(3));
      await waitFor(() => rig.bridge.publisher.acked >= 3, "frames over TLS");
      // half a renewal: the key is replaced, the certificate is not; the reconnect must not throw
      copyFileSync(join(certs, "server.key"), join(certs, "uplink.key"));
      await brokerPresents("server.pem");
      await rig.log.append(frames(3, 3));
      await waitFor(() => rig.logs.join("").includes("does not belong to the client certificate"), "the key mismatch in the log", 15_000, 50);
      await waitFor(() => rig.bridge.publisher.acked >= 6, "the frames after the broker restart acknowledged", 15_000);
      copyFileSync(join(certs, "client.key"), join(certs, "uplink.key"));
      writeFileSync(join(certs, "uplink-ca2.pem"), "truncated by a failed copy\n");
      await brokerPresents("server.pem");
      await rig.log.append(frames(3, 6));
      await waitFor(() => rig.logs.join("").includes("holds no PEM certificate"), "the bad CA file in the log", 15_000, 50);
      await waitFor(() => rig.bridge.publisher.acked >= 9, "the frames after the second broker restart acknowledged", 15_000);
      expect(rig.logs.join("")).not.toContain("PRIVATE KEY");
    } finally {
      await rig.close();
      await sub.close();
    }
  }, 60_000);
});
