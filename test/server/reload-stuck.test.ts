// Hot reload cannot die: a bad endpoint URL is refused with a config.rejected event naming the file and
// path, and the next good edit still applies (seen on main: every later reload was dropped until a
// restart, so a tightened `max` never applied and a REST write above it reached the PLC).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
import { HS_SECRET, startPlc, token } from "./commands-fixture.ts";
import { nextEvent } from "./config-fixture.ts";

let plc: ModbusTcpServer;
let t: TestGateway;
const endpoints = (url: string) => `endpoints:\n  plc: { url: "${url}", timeoutMs: 1000 }\n`;
const variables = (max: number) => `tags:\n  - { tag: line1/sp/temp, driver: plc, type: int16, address: { area: holding, address: 10 }, access: RW, max: ${max}, tenant: acme }\n`;

beforeAll(async () => {
  ({ plc } = await startPlc());
  t = await startGateway({
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\ncommands: { ackTimeoutMs: 5000 }`,
    "endpoints.yml": endpoints(`tcp://127.0.0.1:${plc.port}`),
    "drivers.yml": `drivers:\n  - { id: plc, type: modbus, endpoint: plc, config: { intervalMs: 100 } }\n`,
    "variables.yml": variables(1000),
  });
  await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver to be Active", 20_000);
});
afterAll(async () => {
  await t?.stop();
  await plc?.stop();
});

describe("hot reload after a bad edit", () => {
  it("refuses a bad endpoint URL with config.rejected (file + path), then applies the next good edit: a write over the new max is refused", async () => {
    const config = join(t.dir, "config");
    writeFileSync(join(config, "endpoints.yml"), endpoints(`tpc://127.0.0.1:${plc.port}`));
    const rejected = await nextEvent(t.gw.ctx.log, "config.rejected");
    expect(rejected).toMatchObject({ file: join(config, "endpoints.yml"), path: "endpoints.plc.url" });
    expect(String(rejected.error)).toContain("unsupported scheme 'tpc'");
    expect(t.gw.ctx.drivers.status()[0]?.state).toBe("Active");
    const watcher = async () => ((await (await fetch(`${t.url}/readyz`)).json()) as { components: { services: Record<string, { lastRefused: { error: string } | null }> } }).components.services["config-watcher"];
    await waitFor(async () => (await watcher())?.lastRefused?.error.includes("endpoints.plc.url"), "/readyz to show the refused edit");

    writeFileSync(join(config, "endpoints.yml"), endpoints(`tcp://127.0.0.1:${plc.port}`));
    writeFileSync(join(config, "variables.yml"), variables(100));
    await waitFor(() => t.gw.ctx.catalog.get("line1/sp/temp")?.max === 100, "the tightened max applied", 10_000);
    await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver Active again", 20_000);

    expect((await watcher())?.lastRefused).toBeNull();
    const res = await fetch(`${t.url}/api/tags/line1/sp/temp`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${await token(null)}` },
      body: JSON.stringify({ value: 500 }),
    });
    const body = (await res.json()) as { code?: string; error?: string };
    expect(res.status).toBe(400);
    expect(JSON.stringify(body)).toContain("out_of_range");
    expect(plc.holding[10]).not.toBe(500);
  }, 30_000);
});
