// The stop policy of server/signals.ts in-process: the first stop signal starts the stop, copies
// arriving together count once, a second during the stop is ignored with a log line, a third forces the exit.
import { describe, expect, it } from "bun:test";
import pino from "pino";
import { handleStopSignals } from "../../server/signals.ts";
import { deferred } from "../../storage/time.ts";

function harness(coalesceMs = 50) {
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s).msg) });
  const stopping = deferred<void>();
  let stops = 0;
  const exits: number[] = [];
  const h = handleStopSignals({ logger, coalesceMs, exit: (c) => exits.push(c), stop: () => (stops++, stopping.promise) });
  return { h, lines, stopping, exits, stops: () => stops };
}

const signal = (sig: NodeJS.Signals) => process.emit(sig, sig);

describe("stop signals", () => {
  it("starts one stop for the copies of one Ctrl-C arriving together, and exits 0 when it ends", async () => {
    const t = harness();
    try {
      signal("SIGINT");
      signal("SIGINT");
      signal("SIGTERM");
      expect(t.stops()).toBe(1);
      expect(t.lines).toEqual(["shutting down (a second signal is ignored, a third forces the exit)"]);
      t.stopping.resolve();
      await Bun.sleep(0);
      expect(t.exits).toEqual([0]);
    } finally {
      t.h.uninstall();
    }
  });

  it("ignores a second signal during the stop with a log line, and forces the exit on the third", async () => {
    const t = harness(10);
    try {
      signal("SIGINT");
      await Bun.sleep(30);
      signal("SIGINT");
      expect(t.stops()).toBe(1);
      expect(t.exits).toEqual([]);
      expect(t.lines.some((l) => l.startsWith("stop in progress: signal ignored"))).toBe(true);
      await Bun.sleep(30);
      signal("SIGTERM");
      expect(t.exits).toEqual([1]);
      expect(t.lines.some((l) => l.startsWith("forced exit during the stop"))).toBe(true);
    } finally {
      t.h.uninstall();
    }
  });
});
