// The driver example of README.md, kept compiling and running (test/drivers/readme-example.test.ts).
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink } from "../../drivers/contract.ts";
import { parseDriverConfig } from "../../drivers/validate.ts";
import { Type } from "@sinclair/typebox";

const Config = Type.Object({ intervalMs: Type.Number({ minimum: 10, default: 1000 }) });

export class CounterDriver implements Driver {
  private id = "";
  private intervalMs = 1000;
  private tags: DriverInit["tags"] = [];
  meta() { return { name: "counter", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read"] }; }
  init(i: DriverInit) {            // parse and validate config, no I/O; errors name the field
    this.id = i.id;
    this.intervalMs = parseDriverConfig(i.id, Config, i.config).intervalMs;
    this.tags = i.tags;
  }
  async connect() {}               // open the session (endpoint.pool shares connections per URL)
  async readLoop(tx: FrameSink, signal: AbortSignal) {
    for (let n = 0; !signal.aborted; n++) {
      const ts = Date.now() * 1000;
      // awaiting send() is the backpressure: it waits while the log is above its high-water mark
      await tx.send(this.tags.map((t) => ({ kind: "data", tag: t.tag, value: n, ts, quality: 0, source: this.id })));
      await Bun.sleep(this.intervalMs);
    }
  }
  async shutdown() {}
}
