// Prometheus metrics of the uplink, on the gateway's registry. A metric another consumer already
// registered (edge_bus_lag is shared, labelled by consumer) is reused, not registered twice.
import { Counter, Gauge, type Metric, type Registry } from "prom-client";

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 30_000, 300_000];

/**
 * A histogram without labels for one observation per frame: observe() is a bucket search and three
 * additions. prom-client's Histogram allocates a closure and hashes the labels on every call, which took
 * about 15% of the uplink's CPU at 500k frames/s. Registered on the prom-client registry as a metric of
 * type histogram (the same exposition: _bucket{le}, _sum, _count).
 */
export class FrameHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i]!;
      values.push({ labels: { le: this.bounds[i]! }, value: acc, metricName: `${this.name}_bucket` });
    }
    values.push({ labels: { le: "+Inf" }, value: this.count, metricName: `${this.name}_bucket` });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
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
  readonly latency: FrameHistogram;
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
    this.latency = once(registry, "edge_frame_latency_ms", () => {
      const h = new FrameHistogram("edge_frame_latency_ms", "From a frame's source timestamp to the broker's acknowledgement (ms)", LATENCY_BUCKETS_MS);
      // prom-client's registry only needs name, get() and reset() of a metric; its type lists its own classes
      registry.registerMetric(h as unknown as Metric);
      return h;
    });
    this.commands = once(registry, "edge_mqtt_commands_total", () => new Counter({ name: "edge_mqtt_commands_total", help: "Commands received on MQTT cmd topics, by result from the answer code (ok, expired, timeout = outcome unknown, refused, error)", labelNames: ["result"], registers }));
  }
}
