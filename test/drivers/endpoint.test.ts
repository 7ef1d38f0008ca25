// Endpoint URLs and the connection pool shared by drivers on the same URL.
import { describe, expect, it } from "bun:test";
import { EndpointError, EndpointPool, parseEndpointUrl } from "../../drivers/index.ts";
import { lineSettings, silenceOption } from "../../drivers/endpoint.ts";
import { silenceMs } from "../../drivers/modbus/rtu-frame.ts";

describe("parseEndpointUrl", () => {
  it("parses a Modbus TCP endpoint", () => {
    expect(parseEndpointUrl("tcp://10.0.0.5:502")).toEqual({ url: "tcp://10.0.0.5:502", scheme: "tcp", host: "10.0.0.5", port: 502, path: "", query: {} });
  });

  it("parses a serial line with its settings in the query", () => {
    const e = parseEndpointUrl("serial:///dev/ttyUSB0?baud=9600&parity=even&stop=1");
    expect(e).toMatchObject({ scheme: "serial", host: "", port: undefined, path: "/dev/ttyUSB0" });
    expect(e.query).toEqual({ baud: "9600", parity: "even", stop: "1" });
    expect(lineSettings(e)).toEqual({ baud: 9600, parity: "even", dataBits: 8, stopBits: 1 });
  });

  it("defaults a serial line to 19200 8E1, and no parity to two stop bits, as the Modbus serial spec does", () => {
    expect(lineSettings(parseEndpointUrl("serial:///dev/ttyS0"))).toEqual({ baud: 19200, parity: "even", dataBits: 8, stopBits: 1 });
    expect(lineSettings(parseEndpointUrl("serial:///dev/ttyS0?parity=none"))).toEqual({ baud: 19200, parity: "none", dataBits: 8, stopBits: 2 });
  });

  it("refuses a serial line with a wrong setting, naming the option and the values it takes", () => {
    expect(() => parseEndpointUrl("serial:///dev/ttyS0?baud=9601")).toThrow("'serial:///dev/ttyS0?baud=9601': baud=9601 is not a standard rate (one of 1200,");
    expect(() => parseEndpointUrl("serial:///dev/ttyS0?parity=mark")).toThrow("parity=mark (one of none, even, odd)");
    expect(() => parseEndpointUrl("serial:///dev/ttyS0?stopBits=1")).toThrow("unknown option 'stopBits' (known: baud, parity, stop, data, silence)");
    expect(() => parseEndpointUrl("serial://?baud=9600")).toThrow("missing device path");
  });

  it("refuses an option given twice (baud=9600&baud=19200) instead of taking the last one silently", () => {
    expect(() => parseEndpointUrl("serial:///dev/ttyS0?baud=9600&baud=19200")).toThrow("'serial:///dev/ttyS0?baud=9600&baud=19200': option 'baud' is given twice");
    expect(() => parseEndpointUrl("rtu+tcp://10.0.0.9:4001?silence=0&silence=5")).toThrow("option 'silence' is given twice");
  });

  it("parses RTU over TCP and wants its port", () => {
    expect(parseEndpointUrl("rtu+tcp://10.0.0.9:4001")).toMatchObject({ scheme: "rtu+tcp", host: "10.0.0.9", port: 4001 });
    expect(() => parseEndpointUrl("rtu+tcp://10.0.0.9")).toThrow("missing port");
    expect(() => parseEndpointUrl("rtu+tcp://10.0.0.9:4001?baud=9600")).toThrow("unknown option 'baud' (known: silence)");
  });

  it("takes the inter-frame silence from silence=<ms> on serial:// and rtu+tcp://, and refuses one out of range", () => {
    expect(lineSettings(parseEndpointUrl("serial:///dev/ttyS0?baud=115200&silence=0"))).toEqual({ baud: 115200, parity: "even", dataBits: 8, stopBits: 1, silenceMs: 0 });
    expect(silenceMs(lineSettings(parseEndpointUrl("serial:///dev/ttyS0?baud=115200&silence=0")))).toBe(0);
    expect(silenceMs(lineSettings(parseEndpointUrl("serial:///dev/ttyS0?baud=9600&silence=12.5")))).toBe(12.5);
    expect(silenceOption(parseEndpointUrl("rtu+tcp://10.0.0.9:4001?silence=0.5"))).toBe(0.5);
    expect(silenceOption(parseEndpointUrl("rtu+tcp://10.0.0.9:4001"))).toBeUndefined();
    for (const bad of ["-1", "abc", "", "1001"]) expect(() => parseEndpointUrl(`serial:///dev/ttyS0?silence=${bad}`)).toThrow(`silence=${bad} (milliseconds between frames, 0 to 1000)`);
    expect(() => parseEndpointUrl("rtu+tcp://h:4001?silence=x")).toThrow("'rtu+tcp://h:4001?silence=x': silence=x (milliseconds");
  });

  it("parses an OPC UA endpoint with its path", () => {
    expect(parseEndpointUrl("opc.tcp://plc.local:4840/UA/Server")).toMatchObject({ scheme: "opc.tcp", host: "plc.local", port: 4840, path: "/UA/Server" });
  });

  it("parses TLS over TCP and IPv6 hosts", () => {
    expect(parseEndpointUrl("tls+tcp://gw.example:802")).toMatchObject({ scheme: "tls+tcp", host: "gw.example", port: 802 });
    expect(parseEndpointUrl("tcp://[::1]:5020")).toMatchObject({ scheme: "tcp", host: "::1", port: 5020 });
  });

  it("refuses a string that is not a URL with an EndpointError that shows an example", () => {
    expect(() => parseEndpointUrl("10.0.0.5:502x")).toThrow(EndpointError);
    expect(() => parseEndpointUrl("not a url")).toThrow("'not a url' is not a URL (expected e.g. tcp://10.0.0.5:502)");
  });

  it("refuses an unsupported scheme, naming it and the supported ones", () => {
    expect(() => parseEndpointUrl("http://plc:80")).toThrow(EndpointError);
    expect(() => parseEndpointUrl("http://plc:80")).toThrow("'http://plc:80': unsupported scheme 'http' (one of tcp, tls+tcp, serial, rtu+tcp, opc.tcp, mqtt, mqtts, sim)");
  });

  it("refuses a network endpoint without a host", () => {
    expect(() => parseEndpointUrl("opc.tcp:///path")).toThrow("missing host");
  });
});

describe("EndpointPool", () => {
  function counting() {
    const c = { opened: 0, closed: [] as number[] };
    const open = async () => ++c.opened;
    const close = (v: number) => void c.closed.push(v);
    return { c, open, close };
  }

  it("shares one connection per key between concurrent acquirers", async () => {
    const pool = new EndpointPool();
    const { c, open, close } = counting();
    const [a, b] = await Promise.all([pool.acquire("tcp://plc:502", open, close), pool.acquire("tcp://plc:502", open, close)]);
    const other = await pool.acquire("tcp://other:502", open, close);
    expect(c.opened).toBe(2);
    expect(a.value).toBe(b.value);
    expect(other.value).not.toBe(a.value);
    expect(pool.size).toBe(2);
  });

  it("closes a connection when its last lease is released, once", async () => {
    const pool = new EndpointPool();
    const { c, open, close } = counting();
    const a = await pool.acquire("k", open, close);
    const b = await pool.acquire("k", open, close);
    await a.release();
    await a.release(); // a second release of the same lease does not count
    expect(c.closed).toEqual([]);
    await b.release();
    expect(c.closed).toEqual([1]);
    expect(pool.size).toBe(0);
    const again = await pool.acquire("k", open, close);
    expect(again.value).toBe(2); // a fresh connection after the last release
  });

  it("invalidates a broken connection so the next acquire opens a new one", async () => {
    const pool = new EndpointPool();
    const { c, open, close } = counting();
    const a = await pool.acquire("k", open, close);
    await pool.invalidate("k");
    expect(c.closed).toEqual([1]);
    const b = await pool.acquire("k", open, close);
    expect(b.value).toBe(2);
    await a.release(); // the old lease's release must not close the new connection
    expect(c.closed).toEqual([1]);
    await b.release();
    expect(c.closed).toEqual([1, 2]);
  });

  it("does not keep a failed open: every waiter gets the error and the next acquire retries", async () => {
    const pool = new EndpointPool();
    let calls = 0;
    const open = async () => {
      if (calls++ === 0) throw new Error("ECONNREFUSED");
      return "conn";
    };
    const results = await Promise.allSettled([pool.acquire("k", open, () => {}), pool.acquire("k", open, () => {})]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(pool.size).toBe(0);
    expect((await pool.acquire("k", open, () => {})).value).toBe("conn");
  });
});
