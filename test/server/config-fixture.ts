// Helpers of the config tests: event frames of a type read back from the log.
import type { EventLog } from "../../storage/index.ts";
import { waitFor } from "../helpers/index.ts";

/** The data of every event frame of `type` in the log so far. */
export async function eventsOf(log: EventLog, type: string): Promise<Record<string, unknown>[]> {
  const found: Record<string, unknown>[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === type) found.push(f.data ?? {});
  return found;
}

/** Waits until the log holds more than `after` events of `type` (they are appended without awaiting their commit); returns the last. */
export async function nextEvent(log: EventLog, type: string, after = 0): Promise<Record<string, unknown>> {
  const found = await waitFor(async () => {
    const all = await eventsOf(log, type);
    return all.length > after && all;
  }, `a ${type} event`);
  return found.at(-1)!; // waitFor returned a non-empty list
}
