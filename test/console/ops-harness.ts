// The hooks every browser test file of the operations pages repeats: one harness (gateway on the demo
// plant + chromium) for the file, closed after it, and the browser console checked after each test.
import { afterAll, afterEach, beforeAll } from "bun:test";
import { startConsoleHarness, type ConsoleHarness, type HarnessOptions } from "./harness.ts";

/** A generous bound for one browser test: a page load takes seconds on a loaded two-core machine. */
export const SLOW = 60_000;

/**
 * Registers the file's hooks and returns the harness they start; its members are read when a test runs
 * (after beforeAll), so `const h = consoleHarness(import.meta.file)` at the top of a file is safe.
 */
export function consoleHarness(testFile: string, opts?: HarnessOptions | (() => Promise<HarnessOptions>)): ConsoleHarness {
  let current: ConsoleHarness | null = null;
  beforeAll(async () => {
    current = await startConsoleHarness(testFile, typeof opts === "function" ? await opts() : opts);
  }, 120_000);
  afterAll(async () => current?.close(), 30_000);
  afterEach(() => current?.checkConsole());
  return new Proxy({} as ConsoleHarness, {
    get(_, key) {
      if (!current) throw new Error("the console harness is not started (use it inside a test)");
      return current[key as keyof ConsoleHarness];
    },
  });
}
