// Prometheus metrics of the NATS bridge, on the gateway's registry. edge_bus_lag is shared by every
// consumer (labelled by consumer name) and is reused when another bridge registered it first.
import { Counter, Gauge, type Registry } from "prom-client";

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export class NatsMetrics {
  readonly messages: Counter;
  readonly frames: Counter;
  readonly bytes: Counter;
  readonly publishErrors: Counter<"reason">;
  readonly connected: Gauge;
  readonly lag: Gauge<"consumer">;
  readonly lagSeconds: Gauge<"consumer">;
  readonly commands: Counter<"result">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.messages = once(registry, "edge_nats_messages_published_total", () => new Counter({ name: "edge_nats_messages_published_total", help: "JetStream messages acknowledged (duplicates included)", registers }));
    this.frames = once(registry, "edge_nats_frames_published_total", () => new Counter({ name: "edge_nats_frames_published_total", help: "Frames in acknowledged JetStream messages", registers }));
    this.bytes = once(registry, "edge_nats_bytes_published_total", () => new Counter({ name: "edge_nats_bytes_published_total", help: "Payload bytes of acknowledged JetStream messages", registers }));
    this.publishErrors = once(registry, "edge_nats_publish_errors_total", () => new Counter({ name: "edge_nats_publish_errors_total", help: "JetStream publishes that failed and are retried with the same id", labelNames: ["reason"], registers }));
    this.connected = once(registry, "edge_nats_connected", () => new Gauge({ name: "edge_nats_connected", help: "1 while the bridge is connected to a NATS server", registers }));
    this.lag = once(registry, "edge_bus_lag", () => new Gauge({ name: "edge_bus_lag", help: "Frames between the log head and a consumer's acknowledged offset", labelNames: ["consumer"], registers }));
    this.commands = once(registry, "edge_nats_commands_total", () => new Counter({ name: "edge_nats_commands_total", help: "Commands from NATS answered, by result from the answer code (ok, expired, timeout = outcome unknown, refused, error)", labelNames: ["result"], registers }));
    this.lagSeconds = once(registry, "edge_bus_lag_seconds", () => new Gauge({ name: "edge_bus_lag_seconds", help: "Age of the oldest frame a consumer has not handled yet (s)", labelNames: ["consumer"], registers }));
  }
}
