// Which driver state changes become driver.state events (drivers/state-journal.ts), as a pure table:
// the steps the supervisor goes through in, and the events to log out.
import { describe, expect, it } from "bun:test";
import type { DriverState } from "../../drivers/manager.ts";
import { StateJournal } from "../../drivers/state-journal.ts";

/** Feeds states (with data) and `proven` marks; returns the logged states with their `previous`. */
function run(steps: ([DriverState, Record<string, unknown>?] | "proven")[]): string[] {
  const j = new StateJournal();
  const out: string[] = [];
  for (const s of steps) {
    const ev = s === "proven" ? j.proven() : j.enter(s[0], s[1] ?? {});
    if (ev) out.push(`${String(ev.previous ?? "-")}>${String(ev.state)}`);
  }
  return out;
}
const fail = (error: string): ([DriverState, Record<string, unknown>?])[] => [["Connected"], ["Active"], ["Error", { error }], ["Backoff", { error }]];

describe("StateJournal", () => {
  it("logs a failure streak of the same reason once, and its end when a run reads again", () => {
    expect(run([["Loading"], ["Init"], ["Connected"], ["Active"], "proven", ["Error", { error: "x" }], ["Backoff", { error: "x" }], ...fail("x"), ...fail("x"), ["Connected"], ["Active"], "proven"])).toEqual([
      "->Loading",
      "Loading>Init",
      "Init>Connected",
      "Connected>Active",
      "Active>Backoff",
      "Backoff>Active",
    ]);
  });

  it("logs a Backoff again when the reason changes, and Fault once when it is reached", () => {
    expect(run([["Loading"], ["Init"], ["Error", { error: "a" }], ["Backoff", { error: "a" }], ...fail("b"), ...fail("b"), ["Error", { error: "b" }], ["Fault", { error: "b" }], ["Fault", { error: "b" }]])).toEqual([
      "->Loading",
      "Loading>Init",
      "Init>Backoff",
      "Backoff>Backoff",
      "Backoff>Fault",
    ]);
  });

  it("does not log an Active that is never proven (a run of Bad frames only), and always logs Shutdown", () => {
    expect(run([["Loading"], ["Init"], ["Connected"], ["Active"], ["Error", { error: "x" }], ["Backoff", { error: "x" }], ["Connected"], ["Active"], ["Shutdown"], "proven"])).toEqual([
      "->Loading",
      "Loading>Init",
      "Init>Connected",
      "Connected>Backoff",
      "Backoff>Shutdown",
    ]);
  });

  it("says after how many failed attempts the driver reads again", () => {
    const j = new StateJournal();
    for (const [s, d] of [["Active", {}], ["Backoff", { error: "x" }], ["Backoff", { error: "x" }], ["Backoff", { error: "x" }], ["Active", {}]] as const) j.enter(s, d);
    expect(j.proven()).toEqual({ state: "Active", previous: "Backoff", attempts: 3 });
    expect(j.proven()).toBeNull();
  });
});
