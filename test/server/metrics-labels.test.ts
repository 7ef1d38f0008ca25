// /metrics answers without a token: per-tag series carry the tag name only when metrics.tagLabels is set.
import { describe, expect, it } from "bun:test";
import { EventEmitter } from "node:events";
import type { CommandBus } from "../../storage/index.ts";
import { Metrics } from "../../server/metrics.ts";

/** The two events Metrics follows on the command bus, emitted as the bus does after each commit. */
async function scrapeAfterOneFailedWrite(m: Metrics): Promise<string> {
  const bus = new EventEmitter();
  m.watchCommands(bus as unknown as CommandBus);
  const cmd = { kind: "cmd", id: "c1", tag: "plant/secret/valve", value: 1, origin: "modbus", offset: 1, loggedAt: 1000 };
  bus.emit("command", cmd);
  bus.emit("ack", { kind: "ack", cmd: "c1", tag: "plant/secret/valve", ok: false, code: "device_error", offset: 2, loggedAt: 2000 }, cmd);
  return m.registry.metrics();
}

describe("tag names in /metrics labels", () => {
  it("counts writes by origin and errors without naming any tag by default", async () => {
    const text = await scrapeAfterOneFailedWrite(new Metrics());
    expect(text).toMatch(/^edge_write_total\{origin="modbus"\} 1$/m);
    expect(text).toMatch(/^edge_write_error_total 1$/m);
    expect(text).not.toContain("plant/secret/valve");
  });

  it("labels writes and errors with the tag when metrics.tagLabels is true", async () => {
    const text = await scrapeAfterOneFailedWrite(new Metrics({ tagLabels: true }));
    expect(text).toMatch(/^edge_write_total\{tag="plant\/secret\/valve",origin="modbus"\} 1$/m);
    expect(text).toMatch(/^edge_write_error_total\{tag="plant\/secret\/valve"\} 1$/m);
  });
});
