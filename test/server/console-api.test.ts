// The console's small routes: GET /api/overview (throughput, log, drivers, readiness), GET /api/drivers
// (state, advice, poll statistics) and the admin actions restart / pause / resume, against a gateway
// with a simulator reading every 50 ms.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { driverAdvice } from "../../server/driver-advice.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let reader: string;
let admin: string;

beforeAll(async () => {
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\n`,
    "drivers.yml": "drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 50, signals: { a: { shape: sine, min: 0, max: 10, periodMs: 2000 } } } }\n",
    "variables.yml": "tags:\n  - { tag: a, driver: sim, type: float64 }\n",
  });
  reader = `Bearer ${await token(null, { claims: { scope: "read", tenant: "default" } })}`;
  admin = `Bearer ${await token(null, { claims: { scope: "read write admin", tenant: "default" } })}`;
});
afterAll(async () => g?.stop());

const get = async <T>(path: string, auth = reader): Promise<T> => (await fetch(`${g.url}${path}`, { headers: { authorization: auth } })).json() as Promise<T>;
const post = (path: string, auth = admin) => fetch(`${g.url}${path}`, { method: "POST", headers: { authorization: auth } });
const stateOf = async (id: string) => (await get<Array<{ id: string; state: string }>>("/api/drivers")).find((d) => d.id === id)?.state;
const qualityOf = async (tag: string) => (await get<Array<{ tag: string; quality: string }>>("/api/tags")).find((t) => t.tag === tag)?.quality;

describe("GET /api/overview", () => {
  it("shows frames committed per second, the log's head and size, and the drivers' states", async () => {
    const o = await waitFor(async () => {
      const o = await get<any>("/api/overview");
      return o.framesPerSecond > 0 && o.log.head > 0 ? o : null;
    }, "frames/s above 0");
    expect(o.log.sizeBytes).toBeGreaterThan(0);
    expect(o.commitLatencyMs.p99).toBeGreaterThanOrEqual(o.commitLatencyMs.p50);
    expect(o.drivers).toEqual([{ id: "sim", state: "Active", tags: 1, badTags: 0 }]);
    expect(o.uplink).toBeNull(); // no MQTT uplink configured
    expect(o.alarms).toEqual({ active: 0 }); // the alarm engine runs; no alarm configured
  });

  it("refuses a request without a token with 401", async () => {
    expect((await fetch(`${g.url}/api/overview`)).status).toBe(401);
  });
});

describe("drivers", () => {
  it("lists each driver with its state in plain words, its tags and frames per second", async () => {
    const d = await waitFor(async () => {
      const d = (await get<any[]>("/api/drivers"))[0];
      return d.framesPerSecond > 0 ? d : null;
    }, "a second look with a rate", 5000, 1100);
    expect(d).toMatchObject({ id: "sim", type: "simulator", state: "Active", tags: 1, lastError: null });
    expect(d.advice.words).toContain("Reading");
  });

  it("pauses a driver for an admin (its tags turn Bad out of service) and resumes it", async () => {
    const r = await post("/api/drivers/sim/pause");
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ id: "sim", action: "pause", state: "Shutdown" });
    await waitFor(async () => (await qualityOf("a")) === "Bad_OutOfService", "tag a Bad_OutOfService");
    expect((await post("/api/drivers/sim/resume")).status).toBe(200);
    await waitFor(async () => (await stateOf("sim")) === "Active" && (await qualityOf("a")) === "Good", "sim Active and a Good again");
  });

  it("restarts a driver, counting the restart and keeping its frame count", async () => {
    const [{ restarts: before, framesSent }] = await get<any[]>("/api/drivers");
    expect((await post("/api/drivers/sim/restart")).status).toBe(200);
    const after = await waitFor(async () => {
      const d = (await get<any[]>("/api/drivers"))[0];
      return d.state === "Active" ? d : null;
    }, "sim Active after the restart");
    expect(after.restarts).toBe(before + 1);
    expect(after.framesSent).toBeGreaterThanOrEqual(framesSent);
  });

  it("refuses the actions to a token without the admin scope (403) and names an unknown driver (404)", async () => {
    expect((await post("/api/drivers/sim/pause", reader)).status).toBe(403);
    expect(await stateOf("sim")).not.toBe("Shutdown");
    const r = await post("/api/drivers/nope/restart");
    expect(r.status).toBe(404);
    expect(((await r.json()) as { field: string }).field).toBe("id");
  });
});

describe("driverAdvice", () => {
  it("says a refused connection in words with what to check", () => {
    const a = driverAdvice("Backoff", "connect ECONNREFUSED 127.0.0.1:502");
    expect(a.words).toContain("refused the connection");
    expect(a.todo).toContain("endpoints.yml");
  });

  it("points a Modbus illegal data address at the 0-based addresses of variables.yml", () => {
    expect(driverAdvice("Error", "Modbus exception 2: Illegal data address").todo).toContain("0-based");
  });

  it("words a failed TLS handshake of a tls+tcp:// or mqtts:// endpoint as TLS, not as the OPC UA certificate trust", () => {
    const unknownCa = driverAdvice("Backoff", "connect to 10.0.0.5:802: TLS handshake with 10.0.0.5:802 failed: unknown CA: the server's certificate is not signed by the CA file /c/ca.pem (SELF_SIGNED_CERT_IN_CHAIN)");
    expect(unknownCa.todo).toContain("tls.ca");
    expect(unknownCa.words).not.toContain("OPC UA");
    expect(driverAdvice("Fault", "TLS handshake with 10.0.0.5:802 failed: the server's certificate has expired (CERT_HAS_EXPIRED)").words).toContain("has expired");
    expect(driverAdvice("Backoff", "connect to 10.0.0.5:802: the client key /c/k.key does not belong to the client certificate /c/c.pem").words).toContain("gateway's own TLS files");
  });

  it("words the faults of a Modbus RTU line as the line's (unit id, baud, wiring, adapter), not as an IP route", () => {
    const silent = driverAdvice("Active", null, { total: 5, bad: 5, quality: "Bad_Timeout" }, true);
    expect(silent.words).toContain("did not answer on the serial line");
    expect(silent.todo).toContain("unit id");
    expect(silent.todo).not.toContain("IP");
    expect(driverAdvice("Active", null, { total: 2, bad: 1, quality: "Bad_CommunicationError" }, true).todo).toContain("baud rate and parity");
    const unplugged = driverAdvice("Backoff", "DriverError: driver 'u1': connection failed 3 times: /dev/ttyUSB0: no such device (a USB adapter unplugged, or a wrong path)", undefined, true);
    expect(unplugged.todo).toContain("Plug the USB adapter back in");
    expect(driverAdvice("Backoff", "/dev/ttyUSB0: the device takes no more bytes (output buffer full: a hung adapter, or nothing reading the line)", undefined, true).words).toContain("hangs");
    // the same timeout on a TCP endpoint keeps its network advice
    expect(driverAdvice("Active", null, { total: 5, bad: 5, quality: "Bad_Timeout" }).todo).toContain("IP");
  });

  it("describes the state when nothing failed, whatever the old error", () => {
    expect(driverAdvice("Active", "connect ECONNREFUSED").words).toContain("Reading");
    expect(driverAdvice("Shutdown", null).words).toContain("Stopped");
  });
});
