// What the NATS bridge says of itself in the readiness document (server/context.ts ComponentStatus
// shape): degraded while frames wait for an absent NATS, or while the reader retries.
import type { ConsumerStatus } from "../../storage/consumer.ts";

export type NatsStatus = {
  state: "ok" | "degraded" | "down";
  reasons: string[];
  connected: boolean;
  since: string;
  servers: string;
  lagFrames: number;
  lagSeconds: number;
  inflight: number;
  cursor: number;
  consumer: ConsumerStatus["state"];
  errors: number;
  lastError: string | null;
};

export interface NatsFacts {
  connected: boolean;
  connectionSince: number;
  consumer: ConsumerStatus;
  inflight: number;
  servers: string;
  /** why the command consumer does not consume (null: it does, or commands are off) */
  commands?: string | null;
}

export function natsStatus(f: NatsFacts): NatsStatus {
  const c = f.consumer;
  const since = new Date(f.connectionSince).toISOString();
  const reasons: string[] = [];
  if (!f.connected && c.lagFrames > 0) reasons.push(`NATS ${f.servers} not connected since ${since}: ${c.lagFrames} frames wait in the log (oldest ${c.lagSeconds.toFixed(1)} s)`);
  if (f.commands) reasons.push(`commands from NATS are not taken: ${f.commands}`);
  if (c.state === "retrying") reasons.push(`publishing or reading the log failed, retrying: ${c.lastError ?? "unknown error"}`);
  return { state: reasons.length ? "degraded" : "ok", reasons, connected: f.connected, since, servers: f.servers, lagFrames: c.lagFrames, lagSeconds: c.lagSeconds, inflight: f.inflight, cursor: c.position, consumer: c.state, errors: c.errors, lastError: c.lastError };
}
