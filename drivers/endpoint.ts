// Endpoints are URLs (tcp://host:502, serial:///dev/ttyUSB0?baud=9600, rtu+tcp://host:4001, tls+tcp://...,
// opc.tcp://...).
// Connections are pooled per URL: two drivers on one URL share one connection, opened on first
// acquire and closed when the last lease is released.
import type { TlsFiles } from "../schemas/tls.ts";
import { EndpointError } from "./errors.ts";

export type Scheme = "tcp" | "tls+tcp" | "serial" | "rtu+tcp" | "opc.tcp" | "mqtt" | "mqtts" | "sim";
const SCHEMES: readonly string[] = ["tcp", "tls+tcp", "serial", "rtu+tcp", "opc.tcp", "mqtt", "mqtts", "sim"];

export interface EndpointUrl {
  url: string;
  scheme: Scheme;
  host: string;
  port: number | undefined;
  path: string;
  query: Record<string, string>;
}

export function parseEndpointUrl(url: string): EndpointUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new EndpointError(`'${url}' is not a URL (expected e.g. tcp://10.0.0.5:502)`);
  }
  const scheme = u.protocol.replace(/:$/, "");
  if (!SCHEMES.includes(scheme)) throw new EndpointError(`'${url}': unsupported scheme '${scheme}' (one of ${SCHEMES.join(", ")})`);
  if (scheme !== "serial" && scheme !== "sim" && !u.hostname) throw new EndpointError(`'${url}': missing host`);
  // Object.fromEntries would keep the last silently: baud=9600&baud=19200 is a mistake to show, not to guess
  const twice = [...u.searchParams.keys()].find((k, i, all) => all.indexOf(k) !== i);
  if (twice !== undefined) throw new EndpointError(`'${url}': option '${twice}' is given twice`);
  const port = u.port ? Number(u.port) : undefined;
  const parsed: EndpointUrl = {
    url,
    scheme: scheme as Scheme,
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port,
    path: decodeURIComponent(u.pathname),
    query: Object.fromEntries(u.searchParams),
  };
  if (scheme === "serial") lineSettings(parsed); // a wrong baud rate or parity is a config error, not a driver loop
  if (scheme === "rtu+tcp") {
    if (port === undefined) throw new EndpointError(`'${url}': missing port (a serial device server's TCP port, e.g. rtu+tcp://10.0.0.9:4001)`);
    const unknown = Object.keys(parsed.query).filter((k) => k !== "silence");
    if (unknown.length) throw new EndpointError(`'${url}': unknown option '${unknown[0]}' (known: silence)`);
    silenceOption(parsed);
  }
  return parsed;
}

/** Settings of a serial line: `serial:///dev/ttyUSB0?baud=19200&parity=even&stop=1&data=8`. */
export interface LineSettings {
  baud: number;
  parity: "none" | "even" | "odd";
  dataBits: 7 | 8;
  stopBits: 1 | 2;
  /** `silence=<ms>`: the inter-frame silence the master keeps, when not the spec's 3.5 characters */
  silenceMs?: number;
}

const SERIAL_OPTIONS = ["baud", "parity", "stop", "data", "silence"];

/**
 * `silence=<ms>` on serial:// and rtu+tcp://: the quiet time kept between an answer and the next
 * request, instead of the spec's 3.5 characters (for a converter or device server that keeps the
 * timing itself, or a slave known to need more). Undefined when not given.
 */
export function silenceOption(ep: EndpointUrl): number | undefined {
  const v = ep.query.silence;
  if (v === undefined) return undefined;
  const ms = Number(v);
  if (v.trim() === "" || !Number.isFinite(ms) || ms < 0 || ms > 1000) throw new EndpointError(`'${ep.url}': silence=${v} (milliseconds between frames, 0 to 1000)`);
  return ms;
}
const BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400];

/** The line settings of a serial:// URL (default 19200 8E1, the Modbus serial line spec's default). */
export function lineSettings(ep: EndpointUrl): LineSettings {
  const bad = (what: string) => new EndpointError(`'${ep.url}': ${what}`);
  if (!ep.path || ep.path === "/") throw bad("missing device path (e.g. serial:///dev/ttyUSB0?baud=19200)");
  const unknown = Object.keys(ep.query).filter((k) => !SERIAL_OPTIONS.includes(k));
  if (unknown.length) throw bad(`unknown option '${unknown[0]}' (known: ${SERIAL_OPTIONS.join(", ")})`);
  const { baud = "19200", parity = "even", stop, data = "8" } = ep.query;
  if (!BAUD_RATES.includes(Number(baud))) throw bad(`baud=${baud} is not a standard rate (one of ${BAUD_RATES.join(", ")})`);
  if (parity !== "none" && parity !== "even" && parity !== "odd") throw bad(`parity=${parity} (one of none, even, odd)`);
  if (data !== "7" && data !== "8") throw bad(`data=${data} (7 or 8 data bits)`);
  // the spec keeps 11 bits per character: no parity takes 2 stop bits unless told otherwise
  const stopBits = stop ?? (parity === "none" ? "2" : "1");
  if (stopBits !== "1" && stopBits !== "2") throw bad(`stop=${stopBits} (1 or 2 stop bits)`);
  const silenceMs = silenceOption(ep);
  return { baud: Number(baud), parity, dataBits: Number(data) as 7 | 8, stopBits: Number(stopBits) as 1 | 2, ...(silenceMs === undefined ? {} : { silenceMs }) };
}

/**
 * Schemes a built-in driver can serve today (serial:// and rtu+tcp:// by the Modbus driver, as RTU;
 * tls+tcp:// by the Modbus driver, as Modbus/TCP Security).
 */
export const SERVED_SCHEMES: readonly Scheme[] = ["tcp", "tls+tcp", "serial", "rtu+tcp", "opc.tcp", "mqtt", "mqtts", "sim"];

/** parseEndpointUrl, refusing a scheme no driver serves yet ("not supported yet"). */
export function parseServedEndpointUrl(url: string): EndpointUrl {
  const parsed = parseEndpointUrl(url);
  if (!SERVED_SCHEMES.includes(parsed.scheme)) {
    throw new EndpointError(`'${url}': scheme '${parsed.scheme}' is not supported yet (supported: ${SERVED_SCHEMES.join(", ")})`);
  }
  return parsed;
}

interface PoolEntry {
  refs: number;
  value: Promise<unknown>;
  close: (v: unknown) => Promise<void> | void;
}

export interface Lease<T> {
  value: T;
  release(): Promise<void>;
}

export class EndpointPool {
  private readonly entries = new Map<string, PoolEntry>();

  /** Number of open connections (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * A shared connection for `key` (normally the endpoint URL, plus anything that changes the session,
   * such as a unit id for serial lines). `open` runs only for the first acquirer.
   */
  async acquire<T>(key: string, open: () => Promise<T>, close: (v: T) => Promise<void> | void): Promise<Lease<T>> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { refs: 0, value: open(), close: close as (v: unknown) => Promise<void> | void };
      this.entries.set(key, entry);
      const created = entry;
      created.value.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
    }
    entry.refs++;
    const e = entry;
    let value: T;
    try {
      value = (await e.value) as T;
    } catch (err) {
      e.refs--;
      throw err;
    }
    let released = false;
    return {
      value,
      release: async () => {
        if (released) return;
        released = true;
        if (--e.refs === 0 && this.entries.get(key) === e) {
          this.entries.delete(key);
          await e.close(value);
        }
      },
    };
  }

  /** Drops a broken connection so that the next acquire opens a new one. */
  async invalidate(key: string): Promise<void> {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    try {
      await e.close(await e.value);
    } catch {
      // it was broken already
    }
  }
}

/** What a driver receives at connect: the parsed URL, its settings, and the shared pool. */
export interface Endpoint extends EndpointUrl {
  id: string;
  timeoutMs: number;
  pool: EndpointPool;
  /** tls+tcp://: certificate files, paths absolute (resolved against the config dir) */
  tls?: TlsFiles;
}
