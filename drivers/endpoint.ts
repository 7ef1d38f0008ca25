// Endpoints are URLs (tcp://host:502, serial:///dev/ttyUSB0?baud=9600, tls+tcp://..., opc.tcp://...).
// Connections are pooled per URL: two drivers on one URL share one connection, opened on first
// acquire and closed when the last lease is released.
import { EndpointError } from "./errors.ts";

export type Scheme = "tcp" | "tls+tcp" | "serial" | "opc.tcp" | "mqtt" | "mqtts" | "sim";
const SCHEMES: readonly string[] = ["tcp", "tls+tcp", "serial", "opc.tcp", "mqtt", "mqtts", "sim"];

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
  const port = u.port ? Number(u.port) : undefined;
  return {
    url,
    scheme: scheme as Scheme,
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port,
    path: decodeURIComponent(u.pathname),
    query: Object.fromEntries(u.searchParams),
  };
}

/**
 * Schemes a built-in driver can serve today. tls+tcp:// and serial:// parse (the architecture names them)
 * but no transport exists yet: refusing them at config load beats a driver looping in Error/Backoff.
 */
export const SERVED_SCHEMES: readonly Scheme[] = ["tcp", "opc.tcp", "mqtt", "mqtts", "sim"];

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
}
