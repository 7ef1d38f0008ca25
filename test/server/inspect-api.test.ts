// POST /api/inspect/modbus on a running gateway: raw registers read through a configured Modbus driver's
// own pooled connection, admin scope only, polite to the device (rate-limited), and the device's
// refusals answered with what happened.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { encodeRegisters } from "../../schemas/registers.ts";
import { decodeAt } from "../../schemas/register-views.ts";
import { INSPECT_MIN_INTERVAL_MS } from "../../server/api/inspect.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, waitFor } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

let g: TestGateway;
let device: ModbusTcpServer;

beforeAll(async () => {
  device = new ModbusTcpServer({ host: "127.0.0.1", port: await freePort(), size: 200, unitIds: [1, 3] });
  await device.start();
  // 123.456 stored low word first (CDAB) at holding 10
  device.holding.set(encodeRegisters(123.456, { type: "float32", wordOrder: "LE" }), 10);
  g = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nwatchConfig: false\n`,
    "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:${device.port}", timeoutMs: 500 }\n  sim: { url: "sim://x" }\n`,
    "drivers.yml": "drivers:\n  - { id: plc1, type: modbus, endpoint: plc, config: { intervalMs: 100 } }\n  - { id: sim1, type: simulator }\n",
    "variables.yml": "tags:\n  - { tag: line/flow, driver: plc1, type: float32, address: { area: holding, address: 10, wordOrder: LE } }\n",
  });
  await waitFor(() => device.connections > 0, "the driver's connection");
}, 30_000);

afterAll(async () => {
  await g?.stop();
  await device?.stop();
}, 30_000);

const inspect = async (body: unknown, scope = "admin", bearer?: string) => {
  const r = await fetch(`${g.url}/api/inspect/modbus`, {
    method: "POST",
    headers: { authorization: `Bearer ${bearer ?? (await token(null, { claims: { scope } }))}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as any, retryAfter: r.headers.get("retry-after") };
};
/** One inspection once the driver's rate limit allows it. */
const inspectWhenAllowed = async (body: unknown) => {
  let last: Awaited<ReturnType<typeof inspect>> | undefined;
  await waitFor(async () => (last = await inspect(body)).status !== 429, "the inspector's rate limit", 5000);
  return last!;
};

describe("POST /api/inspect/modbus", () => {
  it("answers the raw registers read through the driver's own connection, which decode as the stored float32 in CDAB", async () => {
    const r = await inspectWhenAllowed({ driver: "plc1", area: "holding", address: 8, count: 6 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ driver: "plc1", area: "holding", address: 8, unitId: 1 });
    expect(r.body.registers).toHaveLength(6);
    expect(decodeAt(r.body.registers, 2, "float32", "CDAB") as number).toBeCloseTo(123.456, 3);
    // the pooled connection of the driver, not a second one
    expect(device.connections).toBe(1);
  });

  it("refuses a token without the admin scope with 403", async () => {
    expect(await inspect({ driver: "plc1", area: "holding", address: 0, count: 1 }, "read write")).toMatchObject({ status: 403, body: { error: "insufficient_scope", message: "the token has no 'admin' scope" } });
  });

  it("names the field of a bad request: unknown driver, a driver of another protocol, a count over 125", async () => {
    expect(await inspect({ driver: "nope", area: "holding", address: 0, count: 1 })).toMatchObject({ status: 404, body: { error: "unknown_driver", field: "driver" } });
    expect(await inspect({ driver: "sim1", area: "holding", address: 0, count: 1 })).toMatchObject({ status: 400, body: { error: "not_modbus", field: "driver" } });
    expect(await inspect({ driver: "plc1", area: "holding", address: 0, count: 126 })).toMatchObject({ status: 400, body: { field: "count" } });
    expect(await inspect({ driver: "plc1", area: "coil", address: 0, count: 1 })).toMatchObject({ status: 400, body: { field: "area" } });
  });

  it("answers the device's exception for an address it does not have with 502 naming the address", async () => {
    const r = await inspectWhenAllowed({ driver: "plc1", area: "input", address: 190, count: 20 });
    expect(r).toMatchObject({ status: 502, body: { error: "device_exception", field: "address" } });
    expect(r.body.message).toContain("exception 2");
  });

  it("answers a unit that does not respond with the device's gateway exception, not a hang", async () => {
    const r = await inspectWhenAllowed({ driver: "plc1", area: "holding", address: 0, count: 1, unitId: 7 });
    expect(r.status).toBe(502);
    expect(r.body.message).toContain("exception 11");
  });

  it(`refuses a second inspection of one driver within ${INSPECT_MIN_INTERVAL_MS} ms with 429 and Retry-After`, async () => {
    const body = { driver: "plc1", area: "holding", address: 0, count: 1 };
    const bearer = await token(null, { claims: { scope: "admin" } });
    // The second request is surely inside the window only when both round trips together took less than
    // it (the server's first inspection ended after the first was sent, the second was admitted before its
    // answer came): a loaded machine can take longer, so such a pair proves nothing and is asked again.
    const again = await waitFor(async () => {
      const sent = performance.now();
      if ((await inspect(body, "admin", bearer)).status !== 200) return null;
      const second = await inspect(body, "admin", bearer);
      return performance.now() - sent < INSPECT_MIN_INTERVAL_MS && second;
    }, `two inspections answered within ${INSPECT_MIN_INTERVAL_MS} ms`, 30_000, INSPECT_MIN_INTERVAL_MS);
    expect(again).toMatchObject({ status: 429, body: { error: "too_many_requests" }, retryAfter: "1" });
  }, 40_000);
});
