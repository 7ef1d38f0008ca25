// What the uplink says of itself in the readiness document (server/context.ts ComponentStatus, the same
// shape; bridges do not import the server): connected or not and since when, the reader's lag and
// in-flight messages. Degraded while frames wait for a broker that is away, while the last connection
// attempt failed, while the certificate files on disk are unusable, or while the reader retries.
import type { ConsumerStatus } from "../../storage/consumer.ts";

export type UplinkStatus = {
  state: "ok" | "degraded" | "down";
  reasons: string[];
  connected: boolean;
  /** ISO time the connection came or went */
  since: string;
  url: string;
  lagFrames: number;
  lagSeconds: number;
  inflight: number;
  cursor: number;
  consumer: ConsumerStatus["state"];
  errors: number;
  lastError: string | null;
};

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
  const c = f.consumer;
  const reasons: string[] = [];
  const since = new Date(f.connectionSince).toISOString();
  if (!f.connected && c.lagFrames > 0) reasons.push(`broker ${f.url} not connected since ${since}: ${c.lagFrames} frames wait in the log (oldest ${c.lagSeconds.toFixed(1)} s)`);
  if (!f.connected && f.connectError) reasons.push(`broker ${f.url}: ${f.connectError}`);
  if (f.tlsFilesProblem) reasons.push(`certificate files on disk unusable: ${f.tlsFilesProblem}`);
  if (c.state === "retrying") reasons.push(`reading the log failed, retrying: ${c.lastError ?? "unknown error"}`);
  return {
    state: reasons.length ? "degraded" : "ok",
    reasons,
    connected: f.connected,
    since,
    url: f.url,
    lagFrames: c.lagFrames,
    lagSeconds: c.lagSeconds,
    inflight: f.inflight,
    cursor: c.position,
    consumer: c.state,
    errors: c.errors,
    lastError: c.lastError,
  };
}
