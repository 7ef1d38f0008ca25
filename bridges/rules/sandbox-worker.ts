// The rules worker's thread: it holds the QuickJS sandboxes of the rules (sandbox.ts) and runs what the
// gateway's thread asks (rules-worker.ts), one request at a time, so a rule's run never holds the
// gateway's event loop. While a batch runs it posts a sign of life after its slices (at most every
// 50 ms): the host restarts a worker that stays silent past its deadline. Nothing here touches the log.
import type { EncodedBatch } from "./batch.ts";
import { RuleLoadError, Sandbox } from "./sandbox.ts";
import type { WorkerReply, WorkerRequest } from "./rules-worker.ts";

declare const self: Worker;

const sandboxes = new Map<number, Sandbox>();
/**
 * Set by the host before it terminates this thread. terminate() alone does not stop a run inside
 * QuickJS's WebAssembly (measured: the thread kept spinning until the rule's own time limit); the
 * interrupt handler reads this flag, so the run returns to JavaScript, where the termination takes hold.
 */
let stopFlag: Int32Array<ArrayBufferLike> = new Int32Array(1);
const stopRequested = () => Atomics.load(stopFlag, 0) !== 0;
const ALIVE_EVERY_MS = 50;

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
    case "run": {
      let last = performance.now();
      const onSlice = () => {
        const now = performance.now();
        if (now - last < ALIVE_EVERY_MS) return;
        last = now;
        self.postMessage({ call: req.call, alive: true } satisfies WorkerReply);
      };
      return sandboxOf(req.id).runEncoded(req.batch as EncodedBatch, { maxLimitFaults: req.maxLimitFaults ?? Infinity, onSlice });
    }
    case "timer":
      return sandboxOf(req.id).runTimer(req.nowMs);
    case "close": {
      const ok = sandboxes.get(req.id)?.close() ?? true;
      sandboxes.delete(req.id);
      return ok;
    }
  }
}

self.onmessage = async (ev: MessageEvent<WorkerRequest | { op: "init"; stop: SharedArrayBuffer }>) => {
  const req = ev.data;
  if (req.op === "init") return void (stopFlag = new Int32Array(req.stop));
  try {
    self.postMessage({ call: req.call, value: await handle(req) } satisfies WorkerReply);
  } catch (e) {
    self.postMessage({ call: req.call, error: errorOf(e) } satisfies WorkerReply);
  }
};
