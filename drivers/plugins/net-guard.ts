// Inside a plugin's child process: network connections are allowed only to the endpoints the gateway
// granted (the driver's endpoint, when the manifest requested its scheme). This catches a plugin that
// reaches for a device it was not given; it is a guard, not a sandbox: trust in what a plugin's code
// does comes from its signature, and containment of its faults from the process boundary.
import net from "node:net";

export class EndpointNotGranted extends Error {
  override name = "EndpointNotGranted";
}

/** host:port pairs of the granted endpoint URLs (tcp://h:p, tls+tcp://h:p, opc.tcp://h:p/x, http://h:p ...). */
export function grantedTargets(endpoints: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const e of endpoints) {
    try {
      const u = new URL(e);
      const port = u.port || (u.protocol === "https:" ? "443" : u.protocol === "http:" ? "80" : "");
      out.add(`${u.hostname.replace(/^\[|\]$/g, "")}:${port}`);
    } catch {
      // a URL that does not parse grants nothing
    }
  }
  return out;
}

function check(allowed: Set<string>, host: unknown, port: unknown): void {
  const key = `${String(host ?? "localhost")}:${String(port ?? "")}`;
  if (!allowed.has(key)) throw new EndpointNotGranted(`connection to ${key} refused: the plugin was granted only ${[...allowed].join(", ") || "no endpoint"}`);
}

/** Replaces the connection entry points of this process with checked ones. */
export function guardNetwork(endpoints: readonly string[]): void {
  const allowed = grantedTargets(endpoints);
  const socketConnect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
    if (typeof first === "object" && first !== null) {
      const o = first as { host?: string; port?: number; path?: string };
      if (o.path !== undefined) throw new EndpointNotGranted(`connection to the local socket ${o.path} refused`);
      check(allowed, o.host, o.port);
    } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
      check(allowed, typeof args[1] === "string" ? args[1] : "localhost", first);
    } else throw new EndpointNotGranted(`connection to the local socket ${String(first)} refused`);
    return (socketConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof socketConnect;
  const bunConnect = Bun.connect;
  (Bun as { connect: unknown }).connect = ((opts: { hostname?: string; port?: number; unix?: string }) => {
    if (opts.unix !== undefined) throw new EndpointNotGranted(`connection to the local socket ${opts.unix} refused`);
    check(allowed, opts.hostname, opts.port);
    return bunConnect(opts as Parameters<typeof Bun.connect>[0]);
  }) as typeof Bun.connect;
  const realFetch = globalThis.fetch;
  globalThis.fetch = Object.assign(
    (input: string | URL | Request, init?: RequestInit) => {
      const u = new URL(input instanceof Request ? input.url : String(input));
      const port = u.port || (u.protocol === "https:" ? "443" : "80");
      check(allowed, u.hostname, port);
      return realFetch(input, init);
    },
    { preconnect: realFetch.preconnect },
  ) as typeof fetch;
}
