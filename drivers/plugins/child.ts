// The child process entry: runs exactly one plugin, answering the host's calls over IPC. Started by
// host.ts with `prlimit --as` (memory cap) and killed by it at a call's deadline; so an endless loop,
// a leak, a crash or an unhandled rejection ends this process only. The entry type decides the loader:
// a `.wasm` entry goes through wasm/runtime.ts (loadWasmPlugin), anything else is imported as a module.
import { join } from "node:path";
import { guardNetwork } from "./net-guard.ts";
import {
  cutLogLine,
  PLUGIN_METHODS,
  type CallRequest,
  type ChildToHost,
  type HostToChild,
  type LoadRequest,
  type LoadWasmPlugin,
  type LogLevel,
  type PluginHostApi,
  type PluginFrame,
  type PluginInstance,
  toColumns,
  wasmCallTimeoutMs,
} from "./protocol.ts";

let instance: PluginInstance | null = null;
/** set once a fatal error is reported: nothing more is answered */
let isDying = false;

function send(msg: ChildToHost): void {
  process.send?.(msg);
}

const errorOf = (e: unknown) => (e instanceof Error ? { name: e.name, message: e.message } : { name: "Error", message: String(e) });

function log(level: LogLevel, msg: string): void {
  send({ op: "log", level, msg: cutLogLine(String(msg)) });
}

/** An error outside any call: tell the host why, then end (the host restarts the plugin). */
function fatal(e: unknown): void {
  if (isDying) return;
  isDying = true;
  send({ op: "fatal", error: errorOf(e) });
  // give the IPC message a moment to leave before the process ends
  setTimeout(() => process.exit(70), 20);
}

async function load(req: LoadRequest): Promise<PluginInstance> {
  const path = join(req.dir, req.entry);
  if (req.entry.endsWith(".wasm")) {
    // a variable specifier: the WebAssembly runtime is a separate part, loaded only for .wasm entries
    const runtime = "./wasm/runtime.ts";
    const { loadWasmPlugin } = (await import(runtime)) as { loadWasmPlugin: LoadWasmPlugin };
    return loadWasmPlugin(new Uint8Array(await Bun.file(path).arrayBuffer()), { kind: req.kind, config: req.config, memoryMaxPages: req.memoryMaxPages, callTimeoutMs: wasmCallTimeoutMs(req.callTimeoutMs), log, now: Date.now });
  }
  guardNetwork(req.endpoints);
  const mod = (await import(path)) as { default?: unknown };
  if (typeof mod.default !== "function") throw new TypeError(`${req.entry}: the default export must be a function (host) => plugin instance`);
  const host: PluginHostApi = { log, now: Date.now };
  const made = await (mod.default as (h: PluginHostApi) => PluginInstance | Promise<PluginInstance>)(host);
  if (!made || typeof made !== "object") throw new TypeError(`${req.entry}: the default export returned ${made === null ? "null" : typeof made}, not a plugin instance`);
  return made;
}

async function call(req: CallRequest): Promise<unknown> {
  if (!instance) throw new Error("no plugin loaded");
  const fn = instance[req.method] as ((...a: unknown[]) => unknown) | undefined;
  if (typeof fn !== "function") throw new TypeError(`the plugin has no method '${req.method}'`);
  return fn.apply(instance, req.args);
}

async function handle(msg: HostToChild): Promise<void> {
  if (isDying) return;
  try {
    if (msg.op === "load") {
      instance = await load(msg);
      const methods = PLUGIN_METHODS.filter((m) => typeof instance?.[m] === "function");
      send({ op: "result", id: msg.id, ok: true, value: { methods } });
    } else {
      const result = (await call(msg)) ?? null;
      // a poll's frames cross as columns (protocol.ts FrameColumns): the crossing is paid per batch
      const value = msg.method === "poll" && Array.isArray(result) ? toColumns(result as PluginFrame[]) : result;
      if (!isDying) send({ op: "result", id: msg.id, ok: true, value });
    }
  } catch (e) {
    if (isDying) return;
    send({ op: "result", id: msg.id, ok: false, error: errorOf(e) });
  }
}

process.on("unhandledRejection", fatal);
process.on("uncaughtException", fatal);
process.on("message", (msg: HostToChild) => void handle(msg));
// the host gone (gateway killed): nothing to serve any more
process.on("disconnect", () => process.exit(0));
