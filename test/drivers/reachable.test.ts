// A driver waiting out a long backoff (Fault: 60 s) reads again within seconds of its device coming back:
// the endpoint's port is probed with bare TCP connects (drivers/reachable.ts). Found from outside: a gateway
// started before its PLC (the order after a power cut) read nothing until up to a minute after the PLC was up.
import { afterEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl } from "../../drivers/index.ts";
import { cameBack, probeTarget } from "../../drivers/reachable.ts";
import { isGood, Variable } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { ModbusDevice } from "../helpers/modbus-device.ts";

setDefaultTimeout(30_000);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const listen = (port: number) =>
  new Promise<Server>((resolve) => {
    const s = createServer((c) => c.destroy()).listen(port, "127.0.0.1", () => resolve(s));
  });

describe("probeTarget", () => {
  it("names host and port of network endpoints (the drivers' default ports when the URL has none) and nothing for serial lines", () => {
    expect(probeTarget(parseEndpointUrl("tcp://10.0.0.5"))).toEqual({ host: "10.0.0.5", port: 502 });
    expect(probeTarget(parseEndpointUrl("opc.tcp://plc:4841/UA"))).toEqual({ host: "plc", port: 4841 });
    expect(probeTarget(parseEndpointUrl("tls+tcp://plc"))).toEqual({ host: "plc", port: 802 });
    expect(probeTarget(parseEndpointUrl("serial:///dev/ttyUSB0?baud=9600"))).toBeNull();
    expect(probeTarget(undefined)).toBeNull();
  });
});

describe("cameBack", () => {
  it("resolves when a port that refused starts to accept, within a probe interval", async () => {
    const port = await freePort();
    const stop = new AbortController();
    cleanups.push(() => stop.abort());
    let at = 0;
    const back = cameBack({ host: "127.0.0.1", port }, stop.signal, 200).then(() => (at = performance.now()));
    await Bun.sleep(500);
    expect(at).toBe(0);
    const opened = performance.now();
    const server = await listen(port);
    cleanups.push(() => server.close());
    await back;
    expect(at - opened).toBeLessThan(1500);
  });

  it("does not resolve for a port that accepts from the first probe (the fault is above TCP), only at the abort", async () => {
    const port = await freePort();
    const server = await listen(port);
    cleanups.push(() => server.close());
    const stop = new AbortController();
    let resolved = false;
    const back = cameBack({ host: "127.0.0.1", port }, stop.signal, 100).then(() => (resolved = true));
    await Bun.sleep(600);
    expect(resolved).toBe(false);
    stop.abort();
    await back;
    expect(resolved).toBe(true);
  });
});

describe("a driver in Fault", () => {
  it("reads again within seconds of a PLC that was off when the gateway started, not at the next 60 s retry", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.cleanup());
    const log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
    cleanups.push(() => log.close());
    const device = new ModbusDevice(await freePort());
    // the longest backoff is 60 s, the gateway's default; one failure is enough for Fault here
    const mgr = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 60_000, backoffMaxMs: 60_000, faultAfterCrashes: 1, watchdogMs: 0 } });
    cleanups.push(() => mgr.stop());
    const tag = TypeValue.Default(Variable, { tag: "t0", driver: "plc", type: "uint16", access: "R", address: { area: "holding", address: 0 } }) as Variable;
    const endpoint = { ...parseEndpointUrl(`tcp://127.0.0.1:${device.port}`), id: "plc", timeoutMs: 300, pool: new EndpointPool() };
    mgr.add({ id: "plc", type: "modbus", enabled: true, config: { intervalMs: 50 } }, endpoint, [tag]);
    await waitFor(() => mgr.status()[0]?.state === "Fault", "the driver in Fault (the PLC is off)");
    const started = performance.now();
    await device.start();
    cleanups.push(() => device.kill());
    await waitFor(() => isGood(log.latest().get("t0")?.quality ?? -1) && mgr.status()[0]?.state === "Active", "a Good reading from the PLC", 15_000);
    // a probe interval (2 s) and the connect, far from the 60 s retry
    expect(performance.now() - started).toBeLessThan(8000);
  });
});
