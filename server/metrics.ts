// Prometheus metrics of the gateway (prom-client), one registry per gateway instance.
// No tag name appears in a label unless `metrics.tagLabels` is set: /metrics answers without a token, and
// the tag catalog is the plant's map (README, "Listening interfaces").
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { DRIVER_STATES, type DriverManager } from "../drivers/index.ts";
import type { AckFrame, CmdFrame, EventFrame, Logged } from "../schemas/index.ts";
import type { CommandBus, CommitEvent, ConsumerState, ConsumerStatus, EventLog } from "../storage/index.ts";

const CONSUMER_STATES: readonly ConsumerState[] = ["starting", "running", "retrying", "stopped"];

export interface MetricsOptions {
  /** label per-tag series with the tag name (gateway.yml `metrics.tagLabels`) */
  tagLabels?: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  readonly framesAppended = new Counter({ name: "edge_frames_appended_total", help: "Frames committed to the event log", registers: [this.registry] });
  readonly commits = new Counter({ name: "edge_log_commits_total", help: "Transactions committed by the log writer", registers: [this.registry] });
  readonly commitErrors = new Counter({ name: "edge_log_commit_errors_total", help: "Failed log commits (frames refused to their producer)", registers: [this.registry] });
  readonly commitLatency = new Histogram({
    name: "edge_log_commit_latency_ms",
    help: "From a frame's append to its commit, per batch (ms)",
    buckets: [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000],
    registers: [this.registry],
  });
  readonly framesRejected = new Counter({ name: "edge_frames_rejected_total", help: "Frames refused before the log", labelNames: ["driver", "reason"], registers: [this.registry] });
  readonly driverErrors = new Counter({ name: "edge_driver_errors_total", help: "Driver crashes, hangs and failed connects", labelNames: ["driver"], registers: [this.registry] });
  readonly driverRestarts = new Counter({ name: "edge_driver_restarts_total", help: "Driver restarts after backoff", labelNames: ["driver"], registers: [this.registry] });
  readonly driverEvents = new Counter({ name: "edge_driver_events_total", help: "Events raised by drivers (bad payloads, device exceptions, state changes ...)", labelNames: ["driver", "type"], registers: [this.registry] });
  readonly mqttSourceRefused = new Counter({ name: "edge_mqtt_source_refused_total", help: "Device messages the MQTT source driver refused (acknowledged, not stored), by reason", labelNames: ["driver", "reason"], registers: [this.registry] });
  readonly driverState = new Gauge({ name: "edge_driver_state", help: "1 for the driver's current state", labelNames: ["driver", "state"], registers: [this.registry] });
  readonly processErrors = new Counter({ name: "edge_uncaught_errors_total", help: "Exceptions caught at the process boundary", registers: [this.registry] });
  /** labels: origin, and tag when `tagLabels` */
  readonly writeTotal: Counter<string>;
  /** labels: tag when `tagLabels`, none otherwise */
  readonly writeErrors: Counter<string>;
  readonly writeRefused = new Counter({ name: "edge_write_refused_total", help: "Write requests refused before the log (auth, validation)", labelNames: ["reason"], registers: [this.registry] });
  readonly ackLatency = new Histogram({
    name: "edge_write_ack_latency_ms",
    help: "From a command's commit to its ack's commit (ms)",
    buckets: [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 30000],
    registers: [this.registry],
  });
  readonly restWriteLatency = new Histogram({
    name: "edge_rest_write_duration_ms",
    help: "PUT /api/tags/:tag from request to answer, for accepted writes (ms)",
    buckets: [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 30000],
    registers: [this.registry],
  });

  constructor(private readonly opts: MetricsOptions = {}) {
    const tag = opts.tagLabels ? ["tag"] : [];
    const registers = [this.registry];
    this.writeTotal = new Counter({ name: "edge_write_total", help: "Commands (setpoint writes) committed to the log", labelNames: [...tag, "origin"], registers });
    this.writeErrors = new Counter({ name: "edge_write_error_total", help: "Commands acked with an error or expired", labelNames: tag, registers });
    collectDefaultMetrics({ register: this.registry, prefix: "edge_process_" });
  }

  watchLog(log: EventLog): void {
    new Gauge({ name: "edge_log_queue_depth", help: "Frames accepted, not yet committed", registers: [this.registry], collect() { this.set(log.queueDepth); } });
    new Gauge({ name: "edge_log_head_offset", help: "Offset of the last committed frame", registers: [this.registry], collect() { this.set(log.head); } });
    new Gauge({ name: "edge_log_paused", help: "1 while producers are paused (backpressure)", registers: [this.registry], collect() { this.set(log.isPaused ? 1 : 0); } });
    log.on("commit", (c: CommitEvent) => {
      this.framesAppended.inc(c.frames);
      this.commits.inc();
      this.commitLatency.observe(c.latencyMs);
    });
    log.on("error", () => this.commitErrors.inc());
    new Gauge({ name: "edge_log_degraded", help: "1 while commits fail for a reason that can pass (disk full ...); producers are paused", registers: [this.registry], collect() { this.set(log.isDegraded ? 1 : 0); } });
    new Gauge({ name: "edge_log_reopens", help: "Times the log's database was reopened after DuckDB invalidated it", registers: [this.registry], collect() { this.set(log.generation); } });
    this.watchConsumers(log);
  }

  /** Per log consumer (storage/consumer.ts), read from log.consumers() at each scrape. */
  private watchConsumers(log: EventLog): void {
    const registers = [this.registry];
    const labelNames = ["consumer"] as const;
    // a consumer that stopped leaves log.consumers(): its series leave with it (reset before each collect)
    const each = (g: Gauge<"consumer">, value: (c: ConsumerStatus) => number) => {
      g.reset();
      for (const c of log.consumers()) g.set({ consumer: c.name }, value(c));
    };
    new Gauge({ name: "edge_consumer_lag", help: "Committed frames a log consumer has not handled yet", labelNames, registers, collect() { each(this, (c) => c.lagFrames); } });
    new Gauge({ name: "edge_consumer_lag_seconds", help: "Age of the oldest frame a log consumer has not handled yet (s)", labelNames, registers, collect() { each(this, (c) => c.lagSeconds); } });
    // counted from the log's event, one per failure: exact, and kept when the consumer stops
    const errors = new Counter({ name: "edge_consumer_errors_total", help: "Read or handler errors of log consumers (each retried)", labelNames, registers });
    log.on("consumerError", (name: string) => errors.inc({ consumer: name }));
    new Gauge({
      name: "edge_consumer_state",
      help: "1 for the log consumer's current state",
      labelNames: ["consumer", "state"],
      registers,
      collect() {
        this.reset();
        for (const c of log.consumers()) for (const s of CONSUMER_STATES) this.set({ consumer: c.name, state: s }, s === c.state ? 1 : 0);
      },
    });
  }

  watchCommands(bus: CommandBus): void {
    const tagged = this.opts.tagLabels ? (tag: string) => ({ tag }) : () => ({});
    bus.on("command", (c: Logged<CmdFrame>) => this.writeTotal.inc({ ...tagged(c.tag), origin: c.origin }));
    bus.on("ack", (a: Logged<AckFrame>, c: Logged<CmdFrame> | undefined) => {
      if (!a.ok) this.writeErrors.inc(tagged(a.tag));
      if (c) this.ackLatency.observe(Math.max(0, (a.loggedAt - c.loggedAt) / 1000));
    });
  }

  watchDrivers(mgr: DriverManager): void {
    mgr.on("state", (id: string, state: string, previous: string) => {
      for (const s of DRIVER_STATES) this.driverState.set({ driver: id, state: s }, s === state ? 1 : 0);
      if (state === "Error") this.driverErrors.inc({ driver: id });
      if (state === "Connected" && previous === "Backoff") this.driverRestarts.inc({ driver: id });
    });
    mgr.on("rejected", (id: string, _tag: string, reason: string) => this.framesRejected.inc({ driver: id, reason }));
    mgr.on("event", (f: EventFrame) => {
      this.driverEvents.inc({ driver: f.source, type: f.type });
      // one event covers `refused` messages (drivers/mqtt/refusals.ts): the counter moves once per message
      if (f.type === "mqtt.bad_payload") this.mqttSourceRefused.inc({ driver: f.source, reason: String(f.data?.reason) }, Number(f.data?.refused ?? 1));
    });
  }
}
