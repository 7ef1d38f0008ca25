// Prometheus metrics of the uplink, on the gateway's registry. A metric another consumer already
// registered (edge_bus_lag is shared, labelled by consumer) is reused, not registered twice.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export class UplinkMetrics {
  readonly messages: Counter;
  readonly frames: Counter;
  readonly bytes: Counter;
  readonly publishErrors: Counter<"reason">;
  readonly connectErrors: Counter<"reason">;
  readonly connected: Gauge;
  readonly lag: Gauge<"consumer">;
  readonly lagSeconds: Gauge<"consumer">;
  readonly latency: Histogram;
  readonly commands: Counter<"result">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.messages = once(registry, "edge_mqtt_messages_published_total", () => new Counter({ name: "edge_mqtt_messages_published_total", help: "MQTT messages acknowledged by the broker (QoS 0: written)", registers }));
    this.frames = once(registry, "edge_mqtt_frames_published_total", () => new Counter({ name: "edge_mqtt_frames_published_total", help: "Frames in acknowledged MQTT messages", registers }));
    this.bytes = once(registry, "edge_mqtt_bytes_published_total", () => new Counter({ name: "edge_mqtt_bytes_published_total", help: "Payload bytes of acknowledged MQTT messages", registers }));
    this.publishErrors = once(registry, "edge_mqtt_publish_errors_total", () => new Counter({ name: "edge_mqtt_publish_errors_total", help: "Publishes refused by the broker or failed", labelNames: ["reason"], registers }));
    this.connectErrors = once(registry, "edge_mqtt_connect_errors_total", () => new Counter({ name: "edge_mqtt_connect_errors_total", help: "Failed connections to the broker (refused, TLS, network)", labelNames: ["reason"], registers }));
    this.connected = once(registry, "edge_mqtt_connected", () => new Gauge({ name: "edge_mqtt_connected", help: "1 while the uplink is connected to its broker", registers }));
    this.lag = once(registry, "edge_bus_lag", () => new Gauge({ name: "edge_bus_lag", help: "Frames between the log head and a consumer's acknowledged offset", labelNames: ["consumer"], registers }));
    this.lagSeconds = once(registry, "edge_bus_lag_seconds", () => new Gauge({ name: "edge_bus_lag_seconds", help: "Age of the oldest frame a consumer has not handled yet (s)", labelNames: ["consumer"], registers }));
    this.latency = once(registry, "edge_frame_latency_ms", () => new Histogram({
      name: "edge_frame_latency_ms",
      help: "From a frame's source timestamp to the broker's acknowledgement (ms)",
      buckets: [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 30_000, 300_000],
      registers,
    }));
    this.commands = once(registry, "edge_mqtt_commands_total", () => new Counter({ name: "edge_mqtt_commands_total", help: "Commands received on MQTT cmd topics, by result", labelNames: ["result"], registers }));
  }
}
