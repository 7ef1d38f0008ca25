// What the uplink says of itself in the readiness document (server/context.ts ComponentStatus, the same
// shape; bridges do not import the server): connected or not and since when, the reader's lag and
// in-flight messages (storage/ack-window.ts windowStatus, shared with NATS). Degraded while frames wait
// for a broker that is away, while the last connection attempt failed, while the certificate files on
// disk are unusable, or while the reader retries.
import { windowStatus, type WindowStatus } from "../../storage/ack-window.ts";
import type { ConsumerStatus } from "../../storage/consumer.ts";

export type UplinkStatus = WindowStatus & { url: string };

export interface UplinkFacts {
  connected: boolean;
  /** ms since the epoch */
  connectionSince: number;
  consumer: ConsumerStatus;
  inflight: number;
  url: string;
  /** why the last connection attempt failed (a TLS handshake names the certificate), null once connected */
  connectError?: string | null;
  /** why the certificate files on disk cannot be used (the connection uses those read before) */
  tlsFilesProblem?: string | null;
}

export function uplinkStatus(f: UplinkFacts): UplinkStatus {
  const reasons = [!f.connected && f.connectError && `broker ${f.url}: ${f.connectError}`, f.tlsFilesProblem && `certificate files on disk unusable: ${f.tlsFilesProblem}`];
  const status = windowStatus({ ...f, peer: `broker ${f.url}`, reasons, retrying: "reading the log" });
  // lastError is the reader's; while the broker cannot be reached, or the files cannot be used, that is the last error
  const lastError = status.lastError ?? ((!f.connected && f.connectError) || f.tlsFilesProblem || null);
  return { ...status, lastError, url: f.url };
}
