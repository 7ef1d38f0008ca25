// Preloaded by `bun test` (bunfig.toml): closes what a test file left running before the next file's tests
// run, and everything at the end of the run. Why per test and not per file: see registry.ts.
import { afterAll, beforeEach } from "bun:test";
import { closeAll, closeLeftovers } from "./registry.ts";

beforeEach(closeLeftovers);
afterAll(closeAll);
