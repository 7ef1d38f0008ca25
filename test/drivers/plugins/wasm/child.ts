// The parent side of child-entry.ts: spawn, load, decode with a deadline per call; past it SIGKILL
// (the one stop that holds for a WebAssembly loop that never checks should_stop).
import { fileURLToPath } from "node:url";
import type { Subprocess } from "bun";
import type { PluginFrame } from "../../../../drivers/plugins/protocol.ts";
import { readPackedBatch } from "../../../../drivers/plugins/wasm/wire.ts";
import { deadline, TIMED_OUT } from "../../../../storage/time.ts";

const ENTRY = fileURLToPath(new URL("./child-entry.ts", import.meta.url));

export class ChildDeadline extends Error {
  override name = "ChildDeadline";
}

export class WasmChild {
  readonly lines: string[] = [];
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 1;
  readonly proc: Subprocess;

  private constructor() {
    this.proc = Bun.spawn({
      cmd: [process.execPath, ENTRY],
      stdin: "ignore",
      stdout: "ignore",
      stderr: "inherit",
      serialization: "advanced",
      ipc: (m: { id?: number; ok?: boolean; value?: unknown; error?: { message: string }; op?: string; level?: string; msg?: string }) => {
        if (m.op === "log") return void this.lines.push(`${m.level}: ${m.msg}`);
        const p = this.pending.get(m.id!);
        this.pending.delete(m.id!);
        if (m.ok) p?.resolve(m.value);
        else p?.reject(new Error(m.error?.message));
      },
    });
    void this.proc.exited.then(() => {
      for (const p of this.pending.values()) p.reject(new Error("child ended"));
    });
  }

  static async start(bytes: Uint8Array, opts: { memoryMaxPages?: number; callTimeoutMs?: number } = {}): Promise<WasmChild> {
    const c = new WasmChild();
    await c.request({ op: "load", bytes, memoryMaxPages: opts.memoryMaxPages ?? 64, callTimeoutMs: opts.callTimeoutMs ?? 1000 }, 10_000);
    return c;
  }

  decode(batch: Uint8Array[], timeoutMs = 2000): Promise<PluginFrame[][]> {
    return this.request({ op: "decode", batch }, timeoutMs) as Promise<PluginFrame[][]>;
  }

  /** The same through one buffer of encoded frames, read on this side. */
  async decodePacked(batch: Uint8Array[], timeoutMs = 2000): Promise<PluginFrame[][]> {
    return readPackedBatch((await this.request({ op: "decodePacked", batch }, timeoutMs)) as Uint8Array);
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }

  private async request(msg: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    const answer = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.proc.send({ ...msg, id });
    const out = await deadline(answer, timeoutMs);
    if (out === TIMED_OUT) {
      this.pending.delete(id);
      this.kill();
      throw new ChildDeadline(`no answer within ${timeoutMs} ms: child killed`);
    }
    return out;
  }
}
