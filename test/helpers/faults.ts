// Fault injection for log consumers: the next `times` page reads of the log throw (every consumer reads
// through log.pages, so a patched instance method reaches them all, without a hook in the product).
import type { EventLog } from "../../storage/index.ts";

/**
 * The next `times` reads whose options pass `match` throw `Error(message)`. Returns how many were thrown
 * so far and a restore function. Reads already under way are not affected; their next page read is.
 */
export function failLogReads(log: EventLog, times = 1, match: (o: { kinds?: readonly string[] }) => boolean = () => true, message = "injected read failure") {
  const original = log.pages.bind(log);
  const state = { thrown: 0 };
  (log as unknown as { pages: typeof log.pages }).pages = function (opts) {
    if (state.thrown < times && match(opts)) {
      state.thrown++;
      // an async generator that fails on its first next(), like a DuckDB read that fails
      return (async function* () {
        throw new Error(message);
      })();
    }
    return original(opts);
  };
  return { get thrown() { return state.thrown; }, restore: () => ((log as unknown as { pages: typeof log.pages }).pages = original) };
}

/**
 * The next `times` small-batch INSERTs of the log's writer (storage/log.ts writeBatch) fail with
 * `message`, as DuckDB's JSON reader refusing a batch would. Reaches the private writer handle.
 */
export function failSmallInserts(log: EventLog, times = 1, message = "Invalid Input Error: injected JSON refusal") {
  const state = { thrown: 0 };
  const writer = log as unknown as { insertSmall: (json: string, first: number, at: number) => Promise<void> };
  const original = writer.insertSmall.bind(log);
  writer.insertSmall = async (json, first, at) => {
    if (state.thrown < times) {
      state.thrown++;
      throw new Error(message);
    }
    return original(json, first, at);
  };
  return { get thrown() { return state.thrown; } };
}

/**
 * Every cursor store of the log (log.commitCursor: a consumer storing its position) takes `ms` longer,
 * as on a slow or busy disk; the frames and the cursor still commit. Returns how many were slowed.
 */
export function slowCursorStores(log: EventLog, ms: number) {
  const state = { slowed: 0 };
  const original = log.commitCursor.bind(log);
  log.commitCursor = async (name, offset) => {
    state.slowed++;
    await Bun.sleep(ms);
    return original(name, offset);
  };
  return { get slowed() { return state.slowed; } };
}
