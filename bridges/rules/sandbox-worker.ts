// The rules worker's thread: it holds the QuickJS sandboxes of the rules (sandbox.ts) and runs what the
// gateway's thread asks (rules-worker.ts), one request at a time, so a rule's run never holds the
// gateway's event loop. While a batch runs it counts a beat after each slice in memory shared with the
// host, which restarts a worker whose count stays still past its deadline. Nothing here touches the log.
import type { EncodedBatch } from "./batch.ts";
import { RuleLoadError, Sandbox } from "./sandbox.ts";
import { BEAT, STOP, type WorkerReply, type WorkerRequest } from "./rules-worker.ts";

declare const self: Worker;

const sandboxes = new Map<number, Sandbox>();
/**
 * Shared with the host (rules-worker.ts SHARED). [STOP] is set by the host before it terminates this
 * thread: terminate() alone does not stop a run inside QuickJS's WebAssembly (measured: the thread kept
 * spinning until the rule's own time limit); the interrupt handler reads it, so the run returns to
 * JavaScript, where the termination takes hold. [BEAT] counts slices: the host reads it directly, so a
 * busy gateway thread (its message queue not read) never mistakes a working thread for a hung one.
 */
let shared: Int32Array<ArrayBufferLike> = new Int32Array(2);
const stopRequested = () => Atomics.load(shared, STOP) !== 0;
const beat = () => void Atomics.add(shared, BEAT, 1);

function errorOf(e: unknown): WorkerReply["error"] {
  if (e instanceof RuleLoadError) return { name: e.name, message: e.message, file: e.file, line: e.line, column: e.column, reason: e.reason };
  const err = e as Error;
  return { name: err?.name ?? "Error", message: err?.message ?? String(e) };
}

function sandboxOf(id: number): Sandbox {
  const sb = sandboxes.get(id);
  if (!sb) throw new Error(`no sandbox ${id} in the rules worker`);
  return sb;
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case "load": {
      sandboxes.get(req.id)?.close();
      sandboxes.delete(req.id);
      const sb = new Sandbox(req.file, req.source, req.limits, req.grants, stopRequested);
      const exports = await sb.load(req.state); // a refused file leaves nothing behind (its load closed it)
      sandboxes.set(req.id, sb);
      return exports;
    }
    case "run":
      return sandboxOf(req.id).runEncoded(req.batch as EncodedBatch, { maxLimitFaults: req.maxLimitFaults ?? Infinity, onSlice: beat });
    case "timer":
      return sandboxOf(req.id).runTimer(req.nowMs);
    case "close": {
      const ok = sandboxes.get(req.id)?.close() ?? true;
      sandboxes.delete(req.id);
      return ok;
    }
  }
}

self.onmessage = async (ev: MessageEvent<WorkerRequest | { op: "init"; shared: SharedArrayBuffer }>) => {
  const req = ev.data;
  if (req.op === "init") return void (shared = new Int32Array(req.shared));
  try {
    self.postMessage({ call: req.call, value: await handle(req) } satisfies WorkerReply);
  } catch (e) {
    self.postMessage({ call: req.call, error: errorOf(e) } satisfies WorkerReply);
  }
};
