// A hot reload that changes a serial line's settings applies them to the line. Several drivers share one
// line through the endpoint pool (the first opener's settings win), and the reload restarted the drivers
// one after the other: the line never closed, and a corrected baud rate (the usual commissioning mistake)
// was reported as applied ("driversRestarted") while the device kept the old one until a restart of the
// gateway. Found from outside on a socat pty pair; `stty` shows the line's speed (a pty keeps it).
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { reloadConfig } from "../../server/reload.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { ptyPair, RtuTestSlave, type PtyPair } from "../helpers/serial.ts";

let dir: ReturnType<typeof tempDir>;
let pair: PtyPair;
let slave: RtuTestSlave;
let t: TestGateway | null = null;

beforeEach(async () => {
  dir = tempDir();
  pair = await ptyPair(dir.path);
  slave = await RtuTestSlave.open(pair.b, [1, 2]);
});

afterEach(async () => {
  await t?.stop();
  t = null;
  slave.close();
  await pair.stop();
  dir.cleanup();
});

const endpoints = (baud: number) => `endpoints:\n  line: { url: "serial://${pair.a}?baud=${baud}&parity=even", timeoutMs: 300 }\n`;
const speed = () => Bun.spawnSync(["stty", "-F", pair.a, "speed"]).stdout.toString().trim();

describe("reload of a serial line's settings", () => {
  it("reopens the line shared by two drivers with the new baud rate, and both units read again", async () => {
    t = await startGateway({
      "gateway.yml": "watchConfig: false",
      "endpoints.yml": endpoints(19200),
      "drivers.yml": "drivers:\n  - { id: u1, type: modbus, endpoint: line, config: { unitId: 1, intervalMs: 50 } }\n  - { id: u2, type: modbus, endpoint: line, config: { unitId: 2, intervalMs: 50 } }\n",
      "variables.yml": "tags:\n  - { tag: u1/a, driver: u1, type: uint16, address: { area: holding, address: 0 } }\n  - { tag: u2/a, driver: u2, type: uint16, address: { area: holding, address: 0 } }\n",
    });
    const gw = t.gw;
    const good = (tag: string, after = 0) => {
      const f = gw.ctx.log.latest().get(tag);
      return f !== undefined && f.offset > after && f.quality === 0;
    };
    await waitFor(() => good("u1/a") && good("u2/a"), "both units Good at 19200");
    expect(speed()).toBe("19200");

    writeFileSync(join(t.dir, "config", "endpoints.yml"), endpoints(9600));
    const before = gw.ctx.log.head;
    const r = await reloadConfig(gw.ctx);
    expect(r).toMatchObject({ ok: true });
    expect([...r.driversRestarted].sort()).toEqual(["u1", "u2"]);
    // the line was opened again with the new settings (before: still 19200 until the gateway restarted)
    await waitFor(() => speed() === "9600", "the line at 9600 baud", 5_000);
    // values read after the reload, from both units (a Bad in between is the restart; Good again after)
    slave.registers.get(1)![0] = 4242;
    slave.registers.get(2)![0] = 4343;
    await waitFor(() => good("u1/a", before) && good("u2/a", before) && gw.ctx.log.latest().get("u1/a")?.value === 4242 && gw.ctx.log.latest().get("u2/a")?.value === 4343, "both units Good again on the reopened line", 10_000);
  }, 30_000);
});
