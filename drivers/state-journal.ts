// Which of a driver's state changes are worth a `driver.state` event in the log. The supervisor steps
// through Loading -> Init -> Connected -> Active -> Error -> Backoff -> Connected ... on every retry;
// an operator reading the log (or the console's event list) needs one line per real change: the
// driver went to Backoff and why, it reads again, it is in Fault, it stopped. So:
//  - Error is never an event of its own: the Backoff or Fault that always follows carries its reason.
//  - Backoff and Fault are logged when they start a failure streak or change its state or reason; a
//    retry that fails the same way adds nothing (GET /api/drivers shows the live state and counters).
//  - Loading, Init and Connected are logged outside a streak only (a start, an operator's restart).
//  - Active is logged once the run has shown that it reads the device (`proven`): its first frame that
//    is not Bad, or a run lasting the longest backoff. A run whose frames are all Bad (a dead PLC behind
//    a live TCP stack or gateway) is not a recovery. Logging Active ends the streak, and says after how
//    many failed attempts.
//  - Shutdown is always logged.
// `previous` in a logged event is the previous *logged* state, so that the log reads as a chain.
import type { DriverState } from "./manager.ts";

/** The event data to log for a state change, or null when it is a step of a retry. */
export type StateEvent = Record<string, unknown> | null;

export class StateJournal {
  /** the failure streak in progress: the state and reason last logged for it, and failed attempts */
  private streak: { state: DriverState; error: string; attempts: number } | null = null;
  private logged: DriverState | null = null;
  /** Active reached but not proven yet (not logged) */
  private activePending = false;

  /** The state the supervisor entered, with its data; returns what to log, or null. */
  enter(state: DriverState, data: Record<string, unknown>): StateEvent {
    if (state !== "Active") this.activePending = false;
    switch (state) {
      case "Error":
        return null;
      case "Active":
        this.activePending = true;
        return null;
      case "Backoff":
      case "Fault":
        return this.failed(state, data);
      case "Shutdown":
        this.streak = null;
        return this.log(state, data);
      default:
        return this.streak ? null : this.log(state, data);
    }
  }

  /** True while the run is Active but has not shown yet that it reads the device. */
  get isUnproven(): boolean {
    return this.activePending;
  }

  /** The Active run read the device: the Active event to log (once), or null. */
  proven(): StateEvent {
    if (!this.activePending) return null;
    this.activePending = false;
    const attempts = this.streak?.attempts;
    this.streak = null;
    return this.log("Active", attempts ? { attempts } : {});
  }

  private failed(state: DriverState, data: Record<string, unknown>): StateEvent {
    const error = String(data.error ?? "");
    const s = this.streak;
    if (s) s.attempts++;
    if (s && s.state === state && s.error === error) return null;
    this.streak = { state, error, attempts: s?.attempts ?? 1 };
    return this.log(state, data);
  }

  private log(state: DriverState, data: Record<string, unknown>): Record<string, unknown> {
    const previous = this.logged;
    this.logged = state;
    return { state, ...(previous ? { previous } : {}), ...data };
  }
}
