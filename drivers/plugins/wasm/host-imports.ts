// The host side of the imports a WebAssembly plugin may use (ABI.md, "Imports"): log lines in five levels
// capped at 4096 bytes, the wall clock, the cooperative interrupt check, and AssemblyScript's abort. The
// view of the plugin's memory is taken afresh on every use because memory.grow detaches the old buffer.

import { LOG_LINE_MAX, type LogLevel } from "../protocol.ts";

/** The ABI's level numbers 0..4 (ABI.md), in order. */
export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error"];
export type { LogLevel };

/** One log line from a WebAssembly plugin is at most this many UTF-8 bytes; the cut is said. */
export const LOG_LINE_MAX_BYTES = LOG_LINE_MAX;

/** Thrown by the abort import: AssemblyScript's assertion/`throw`, carried as the trap's text. */
export class WasmAbort extends Error {
  override name = "WasmAbort";
}

/** What the imports need of the instance that owns them (set after instantiation). */
export interface ImportContext {
  memory(): WebAssembly.Memory;
  log(level: LogLevel, msg: string): void;
  now(): number;
  /** true when the current call is past its deadline or the host asked to stop */
  shouldStop(): boolean;
}

/** Log lines a plugin may send a second; past it lines are dropped and the drop is said once. */
export const LOG_LINES_PER_SECOND = 100;

/**
 * Wraps a log so that a plugin logging per payload (100,000 payloads a second) cannot flood the
 * gateway's log and the IPC channel: at most `perSecond` lines in a one-second window, then the count
 * of dropped lines is logged as a warning when the next window opens.
 */
export function limitLog(log: (level: LogLevel, msg: string) => void, perSecond = LOG_LINES_PER_SECOND, clock = () => performance.now()) {
  let windowStart = clock();
  let lines = 0;
  let dropped = 0;
  return (level: LogLevel, msg: string): void => {
    const now = clock();
    if (now - windowStart >= 1000) {
      if (dropped) log("warn", `${dropped} log lines dropped (more than ${perSecond} a second)`);
      windowStart = now;
      lines = dropped = 0;
    }
    if (++lines <= perSecond) log(level, msg);
    else dropped++;
  };
}

/** Names of the `env` imports a plugin may declare; any other import is refused at load. */
export const KNOWN_IMPORTS = new Set(["log", "now_ms", "should_stop", "abort", "memory"]);

const lossy = new TextDecoder("utf-8");

/** Builds the import object; `memory` is the host-made memory when the module imports one. */
export function hostImports(ctx: ImportContext, memory?: WebAssembly.Memory): WebAssembly.Imports {
  const env: Record<string, WebAssembly.ImportValue> = {
    log: (level: number, ptr: number, len: number) => ctx.log(LOG_LEVELS[Math.min(Math.max(level | 0, 0), 4)]!, readLogLine(ctx.memory(), ptr, len)),
    now_ms: () => ctx.now(),
    should_stop: () => (ctx.shouldStop() ? 1 : 0),
    abort: (msg: number, file: number, line: number, col: number) => {
      const mem = ctx.memory();
      throw new WasmAbort(`abort: ${readAsString(mem, msg)} at ${readAsString(mem, file)}:${line}:${col}`);
    },
  };
  if (memory) env.memory = memory;
  return { env };
}

/** The text of a log call, cut to LOG_LINE_MAX_BYTES (a multi-byte character cut in two becomes U+FFFD). */
export function readLogLine(memory: WebAssembly.Memory, ptr: number, len: number): string {
  const mem = new Uint8Array(memory.buffer);
  if (ptr < 0 || len < 0 || ptr + len > mem.length) throw new RangeError(`log: text ${ptr}+${len} lies outside memory (${mem.length} bytes)`);
  return capLogText(mem.subarray(ptr, ptr + len));
}

/** UTF-8 text of a log line, cut at LOG_LINE_MAX_BYTES with the cut said. */
export function capLogText(bytes: Uint8Array): string {
  if (bytes.length <= LOG_LINE_MAX_BYTES) return lossy.decode(bytes);
  return `${lossy.decode(bytes.subarray(0, LOG_LINE_MAX_BYTES))}… [${bytes.length - LOG_LINE_MAX_BYTES} more bytes cut]`;
}

/** An AssemblyScript string: UTF-16LE, its byte length in the 4 bytes before it (0 = none given). */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  const mem = new Uint8Array(memory.buffer);
  if (ptr < 4 || ptr > mem.length) return "?";
  const bytes = Math.min(new DataView(memory.buffer).getUint32(ptr - 4, true), LOG_LINE_MAX_BYTES, mem.length - ptr);
  return new TextDecoder("utf-16le").decode(mem.subarray(ptr, ptr + (bytes & ~1)));
}
