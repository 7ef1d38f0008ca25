// What the NATS bridge says of itself in the readiness document (server/context.ts ComponentStatus
// shape; storage/ack-window.ts windowStatus, shared with MQTT): degraded while frames wait for an absent
// NATS, while commands are not taken, or while the reader retries.
import { windowStatus, type WindowStatus } from "../../storage/ack-window.ts";
import type { ConsumerStatus } from "../../storage/consumer.ts";

export type NatsStatus = WindowStatus & { servers: string };

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
  const reasons = [f.commands && `commands from NATS are not taken: ${f.commands}`];
  return { ...windowStatus({ ...f, peer: `NATS ${f.servers}`, reasons, retrying: "publishing or reading the log" }), servers: f.servers };
}
