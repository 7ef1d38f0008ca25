// The seam between the gateway and a plugin: what a loaded plugin is (PluginInstance, the same for a
// JavaScript module and a WebAssembly module), and the messages that cross the IPC channel between the
// gateway (host.ts) and the one child process that runs the plugin (child.ts).
//
// Everything here crosses a process boundary by structured clone (Bun IPC, "advanced" serialization):
// plain data only, no functions, no class instances. Frames cross in batches (one message per poll
// or per decode batch), so the ~23 µs round trip is paid per batch, not per frame.
import type { AckCode, Value } from "../../schemas/index.ts";

/** The plugin API the gateway speaks; a manifest's `api = {min, max}` must include it. */
export const PLUGIN_API_VERSION = 1;

export type PluginKind = "driver" | "decoder";

/**
 * A reading as a plugin produces it: the host adds kind and source, a missing ts is "now" (µs), a
 * missing quality is Good (0). Qualities are OPC UA StatusCodes (schemas/quality.ts).
 */
export interface PluginFrame {
  tag: string;
  value: Value;
  /** source timestamp, microseconds since the Unix epoch */
  ts?: number;
  quality?: number;
}

/** A payload a decoder failed on (trap, time limit, refusal of its input): why, for the refusal. */
export interface PayloadFailure {
  failed: string;
}

/** A tag as a plugin sees it (a copy of the catalog entry, plain data). */
export interface PluginTag {
  tag: string;
  type: string;
  group: string;
  address?: unknown;
  access: string;
}

/** What init gets: the driver's config from drivers.yml, its tags, and the endpoint the gateway granted. */
export interface PluginInit {
  /** the driver id (drivers.yml) or the decoder's user */
  id: string;
  config: Record<string, unknown>;
  tags: PluginTag[];
  /** the endpoint URL given by the gateway (endpoints.yml), only when the manifest requested its scheme */
  endpoint?: string;
}

/** A command to execute, as a plugin sees it (value already in device units is the plugin's job). */
export interface PluginCommand {
  id: string;
  tag: string;
  value: Value;
  expiresAt: number;
}

export interface PluginWriteResult {
  ok: boolean;
  code?: AckCode;
  error?: string;
}

/**
 * A loaded plugin. A JavaScript plugin's entry module default-exports a function returning one
 * (`export default (host: PluginHostApi) => PluginInstance`); a WebAssembly plugin is wrapped into one
 * by drivers/plugins/wasm/runtime.ts `loadWasmPlugin`. Every method may be sync or async; each call has
 * a deadline in the host (past it the child is killed and the plugin restarted).
 */
export interface PluginInstance {
  /** validate config, keep tags; no I/O */
  init?(init: PluginInit): void | Promise<void>;
  /** open the device session (drivers); the endpoint is in init */
  connect?(): void | Promise<void>;
  /** one poll cycle: the frames read now (drivers) */
  poll?(): PluginFrame[] | Promise<PluginFrame[]>;
  /** execute one command (drivers that write) */
  write?(cmd: PluginCommand): PluginWriteResult | Promise<PluginWriteResult>;
  /** raw payloads in, frames out: one array of frames per payload, in order (decoders) */
  decode?(batch: Uint8Array[]): PluginFrame[][] | Promise<PluginFrame[][]>;
  /**
   * decode with the frames in the WebAssembly ABI's encoding (wasm/wire.ts packBatch): one buffer crosses
   * the process boundary instead of thousands of frame objects; preferred by the gateway when present
   */
  decodePacked?(batch: Uint8Array[]): Uint8Array | Promise<Uint8Array>;
  shutdown?(): void | Promise<void>;
}

export type PluginMethod = "init" | "connect" | "poll" | "write" | "decode" | "decodePacked" | "shutdown";
export const PLUGIN_METHODS: readonly PluginMethod[] = ["init", "connect", "poll", "write", "decode", "decodePacked", "shutdown"];

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";
/** A plugin's log line is cut to this many bytes of UTF-8 (a plugin must not flood the gateway's log). */
export const LOG_LINE_MAX = 4096;

const utf8 = new TextEncoder();
const utf8Out = new TextDecoder();

/** Cut to LOG_LINE_MAX bytes of UTF-8, at a character boundary (a cut character is dropped whole). */
export function cutLogLine(msg: string): string {
  if (msg.length * 3 <= LOG_LINE_MAX) return msg; // cannot be longer in UTF-8: the common case costs nothing
  const bytes = utf8.encode(msg);
  if (bytes.length <= LOG_LINE_MAX) return msg;
  let end = LOG_LINE_MAX;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back to the first byte of the cut character
  return utf8Out.decode(bytes.subarray(0, end));
}

/**
 * A WebAssembly plugin's own time limit per payload: below the host's deadline, so that a loop that
 * checks should_stop is stopped by the runtime (that payload fails, the process lives) before the host
 * has to kill the process.
 */
export const wasmCallTimeoutMs = (hostDeadlineMs: number) => Math.max(1, Math.floor(hostDeadlineMs * 0.8));

/** What the child hands a JavaScript plugin's factory. */
export interface PluginHostApi {
  log(level: LogLevel, msg: string): void;
  /** milliseconds since the Unix epoch */
  now(): number;
}

// ---- IPC messages ---------------------------------------------------------------------------------

/** How the child is told what to load (the first message after spawn). */
export interface LoadRequest {
  op: "load";
  id: number;
  /** absolute path of the verified plugin folder */
  dir: string;
  /** manifest entry, relative to dir: `*.js`/`*.ts` (JS module) or `*.wasm` (WebAssembly) */
  entry: string;
  kind: PluginKind;
  config: unknown;
  /** WebAssembly memory ceiling, in 64 KiB pages */
  memoryMaxPages: number;
  /** network endpoints the plugin may open (URLs granted by the gateway) */
  endpoints: string[];
  /**
   * the host's deadline of one call; a WebAssembly plugin's own time limit is set below it, so that a
   * loop that checks should_stop ends cleanly (a trap for that payload) before the process is killed
   */
  callTimeoutMs: number;
}

export interface CallRequest {
  op: "call";
  id: number;
  method: PluginMethod;
  args: unknown[];
}

export type HostToChild = LoadRequest | CallRequest;

export interface CallResult {
  op: "result";
  id: number;
  ok: true;
  value: unknown;
}

export interface CallFailure {
  op: "result";
  id: number;
  ok: false;
  error: { name: string; message: string };
}

export interface LogMessage {
  op: "log";
  level: LogLevel;
  msg: string;
}

/** The child is about to exit because of an error outside any call (unhandled rejection, uncaught throw). */
export interface FatalMessage {
  op: "fatal";
  error: { name: string; message: string };
}

export type ChildToHost = CallResult | CallFailure | LogMessage | FatalMessage;

/** The methods a loaded instance has (sent back as the result of `load`). */
export type LoadResult = { methods: PluginMethod[] };

/**
 * The seam with the WebAssembly side: drivers/plugins/wasm/runtime.ts exports
 * `loadWasmPlugin(bytes: Uint8Array, opts: WasmLoadOptions): Promise<PluginInstance>`, and child.ts
 * calls it for a `.wasm` entry (the child's deadline and memory cap hold for WebAssembly loops too).
 */
export interface WasmLoadOptions {
  kind: PluginKind;
  config: unknown;
  memoryMaxPages: number;
  /** time limit of one call (one payload of a batch) before the interrupt check says stop */
  callTimeoutMs?: number;
  log(level: LogLevel, msg: string): void;
  now(): number;
}
export type LoadWasmPlugin = (bytes: Uint8Array, opts: WasmLoadOptions) => Promise<PluginInstance>;

/**
 * A poll's frames as they cross the IPC channel: columns, not objects. Measured over Bun IPC (advanced
 * serialization, 100 frames a message): objects ~100 µs, string + value arrays ~64 µs, and with the
 * numbers in a Float64Array ~25-40 µs; so numbers go as a typed array when every value is one.
 */
export interface FrameColumns {
  tags: string[];
  values: Float64Array | PluginFrame["value"][];
  /** null when no frame carries its own timestamp */
  ts: Float64Array | null;
  /** null when every frame is Good */
  quality: Uint32Array | null;
}

export function toColumns(frames: readonly PluginFrame[]): FrameColumns {
  const n = frames.length;
  const tags = new Array<string>(n);
  let numeric = true;
  let hasTs = false;
  let hasQuality = false;
  for (let i = 0; i < n; i++) {
    const f = frames[i]!;
    tags[i] = f.tag;
    if (typeof f.value !== "number") numeric = false;
    if (f.ts !== undefined) hasTs = true;
    if (f.quality) hasQuality = true;
  }
  const values = numeric ? Float64Array.from(frames, (f) => f.value as number) : frames.map((f) => f.value);
  const ts = hasTs ? Float64Array.from(frames, (f) => f.ts ?? NaN) : null;
  const quality = hasQuality ? Uint32Array.from(frames, (f) => f.quality ?? 0) : null;
  return { tags, values, ts, quality };
}
