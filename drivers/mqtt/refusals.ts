// Device messages the driver refuses (undecodable, no value at the path, wrong type, out of range, or
// anything else that fails while mapping): each one is acknowledged to the broker (a redelivery would
// fail the same way forever), counted, and recorded in the log as an `mqtt.bad_payload` event. Events
// are grouped: the first refusal of a reason goes out at once, later ones are summed and go out at most
// once per reason every `everyMs`, with `refused` = how many messages the event covers. So the counter
// the gateway derives from the events (edge_mqtt_source_refused_total{reason}, server/metrics.ts) moves
// once per refused message, while a flood of bad payloads writes a few events per second, not one each.
import { Quality } from "../../schemas/index.ts";
import type { FrameSink } from "../contract.ts";
import type { BadPayloadReason } from "./mapping.ts";

export const REFUSED_EVENT = "mqtt.bad_payload";

/** Distinct topics named in one event (a sample: the count is exact, the list is not). */
const TOPICS_PER_EVENT = 10;

interface Pending {
  refused: number;
  topics: Set<string>;
  topic: string;
  message: string;
}

export class Refusals {
  /** refused messages by reason since the driver was created */
  readonly totals = new Map<BadPayloadReason, number>();
  private readonly pending = new Map<BadPayloadReason, Pending>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private sink: FrameSink | null = null;

  constructor(private readonly everyMs = 1000) {}

  /** The sink of the driver's current run (a grouped event after a restart goes to the new run's sink). */
  useSink(tx: FrameSink): void {
    this.sink = tx;
  }

  /** Counts one refused message and records it (at once, or in the next grouped event). */
  add(tx: FrameSink, reason: BadPayloadReason, topic: string, message: string): void {
    this.sink = tx;
    this.totals.set(reason, (this.totals.get(reason) ?? 0) + 1);
    let p = this.pending.get(reason);
    if (!p) this.pending.set(reason, (p = { refused: 0, topics: new Set(), topic, message }));
    p.refused++;
    p.topic = topic;
    p.message = message;
    if (p.topics.size < TOPICS_PER_EVENT) p.topics.add(topic);
    if (this.timer) return;
    // no event in the last `everyMs`: this one goes out now, and the window opens
    this.flush();
  }

  /** Records what is pending, one event per reason; keeps the window open while refusals keep coming. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size === 0 || !this.sink) return;
    for (const [reason, p] of this.pending) {
      this.sink.event(REFUSED_EVENT, { reason, refused: p.refused, total: this.totals.get(reason), topic: p.topic, topics: [...p.topics], message: p.message, quality: Quality.Bad });
    }
    this.pending.clear();
    this.timer = setTimeout(() => this.flush(), this.everyMs);
    this.timer.unref?.();
  }

  /** At shutdown: what is pending is recorded, the timer stopped. */
  close(): void {
    this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
