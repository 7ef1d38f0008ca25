// Whether a network device that could not be reached answers again. While a driver waits out a long
// backoff (in Fault, the longest: 60 s by default), its endpoint's port is tried every PROBE_EVERY_MS with
// a bare TCP connect (no protocol bytes; closed at once) and the wait ends when the port accepts after it
// had refused or timed out: the PLC has booted, the cable is back. Found from outside: a gateway that
// started before its PLC (the usual order after a power cut: the PLC boots slower) went to Fault and read
// nothing until up to a minute after the PLC was up. A port that accepts from the first probe says the
// fault is above TCP (a wrong unit id, a refused session): that wait is not cut, the backoff still spares
// the device.
import { connect } from "node:net";
import { delay } from "../storage/time.ts";
import type { EndpointUrl } from "./endpoint.ts";

/** How often the port of a device that is down is tried. */
export const PROBE_EVERY_MS = 2000;

/** The ports the drivers use when the URL names none. */
const DEFAULT_PORTS: Partial<Record<EndpointUrl["scheme"], number>> = { tcp: 502, "tls+tcp": 802, "rtu+tcp": 502, "opc.tcp": 4840, mqtt: 1883, mqtts: 8883 };

/** The host and port to probe, or null for an endpoint that is not a TCP peer (serial, simulator). */
export function probeTarget(ep: Pick<EndpointUrl, "scheme" | "host" | "port"> | undefined): { host: string; port: number } | null {
  const port = ep?.port ?? (ep ? DEFAULT_PORTS[ep.scheme] : undefined);
  return ep && ep.host && port ? { host: ep.host, port } : null;
}

/** true when a TCP connect to the target succeeds within `timeoutMs` (the socket is closed at once). */
export function portAccepts(target: { host: string; port: number }, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port });
    const end = (ok: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on("error", () => undefined);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => end(false), timeoutMs);
    socket.once("connect", () => end(true));
    socket.once("error", () => end(false));
  });
}

/**
 * Resolves once the target's port accepts after having refused (or timed out), or when `signal` aborts.
 * A port that accepts at the first probe leaves it waiting for the abort.
 */
export async function cameBack(target: { host: string; port: number }, signal: AbortSignal, everyMs = PROBE_EVERY_MS, timeoutMs = 2000): Promise<void> {
  let wasDown = false;
  while (!signal.aborted) {
    const up = await portAccepts(target, timeoutMs);
    if (signal.aborted || (up && wasDown)) return;
    wasDown ||= !up;
    // up from the first probe: nothing to tell; the caller's backoff (which aborts `signal`) ends the wait
    if (up) return await delay(2 ** 31 - 1, signal);
    await delay(everyMs, signal);
  }
}
