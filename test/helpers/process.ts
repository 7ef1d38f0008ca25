// Child processes for tests, one way: spawn, keep what the child prints (the tail, bounded), wait until
// it prints what says it is ready or until it accepts connections on a port (failing at once, with its
// last output, when it exits first), and stop it with a signal (SIGKILL: a crash). Used for the brokers
// (mosquitto, nats-server), gateway children (gateway-process.ts) and device or plant processes.
import type { Subprocess } from "bun";
import { waitFor } from "./index.ts";
import { registerProcess } from "./registry.ts";

export interface ChildOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** the child's stderr: kept with its stdout (default), passed through to the test's, or dropped */
  stderr?: "pipe" | "inherit" | "ignore";
  /** characters of output kept (the tail) */
  keepChars?: number;
}

export class ChildExitedError extends Error {
  override name = "ChildExitedError";
}

/**
 * Children still running: SIGKILLed when the test process exits, so that a test that failed before its
 * cleanup leaves no server or gateway behind (holding ports, or the pipe of whoever reads the output).
 * Each is also registered (registry.ts), so that one its file left running is killed before later files go on.
 */
const running = new Set<Child>();
process.on("exit", () => {
  for (const c of running) c.proc.kill("SIGKILL");
});

export class Child {
  readonly proc: Subprocess<"ignore", "pipe", "pipe" | "inherit" | "ignore">;
  private out = "";
  private ended = false;
  private readonly waiters = new Set<() => boolean>();
  private readonly keepChars: number;
  /** resolves when every output stream has ended (the child exited, its output is complete) */
  readonly outputEnded: Promise<void>;

  constructor(
    /** what the child is, for error messages */
    readonly what: string,
    cmd: string[],
    opts: ChildOptions = {},
  ) {
    this.keepChars = opts.keepChars ?? 200_000;
    const stderr = opts.stderr ?? "pipe";
    this.proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr, ...(opts.env ? { env: opts.env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    const streams = [this.collect(this.proc.stdout)];
    if (stderr === "pipe") streams.push(this.collect(this.proc.stderr as ReadableStream<Uint8Array>));
    running.add(this);
    registerProcess(what, this.proc);
    void this.proc.exited.then(() => running.delete(this));
    this.outputEnded = Promise.all(streams).then(() => {
      this.ended = true;
      this.tell();
    });
  }

  /** What the child printed (the last keepChars characters). */
  get output(): string {
    return this.out;
  }

  get pid(): number {
    return this.proc.pid;
  }

  get isRunning(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The exit code (null when a signal ended it). */
  get exited(): Promise<number | null> {
    return this.proc.exited.then(() => this.proc.exitCode);
  }

  /**
   * Resolves with the first truthy value of `check(output)`, checked at every chunk the child prints;
   * rejects when the child ends first (ChildExitedError, with its last output) or after `timeoutMs`.
   */
  waitForOutput<T>(check: (output: string) => T, what: string, timeoutMs = 30_000): Promise<Exclude<T, false | null | undefined | 0 | "">> {
    return new Promise((resolve, reject) => {
      const tail = () => this.out.slice(-1500);
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} from ${this.what}; it printed: ${tail()}`));
      }, timeoutMs);
      const waiter = (): boolean => {
        const v = check(this.out);
        if (!v && !this.ended) return false;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        if (v) resolve(v as Exclude<T, false | null | undefined | 0 | "">);
        else reject(new ChildExitedError(`${this.what} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}; it printed: ${tail()}`));
        return true;
      };
      if (!waiter()) this.waiters.add(waiter);
    });
  }

  /** Resolves once the child accepts TCP connections on 127.0.0.1:`port`; rejects when it exits first. */
  async waitForPort(port: number, timeoutMs = 15_000, everyMs = 20): Promise<void> {
    const state = await waitFor(async () => (!this.isRunning ? "exited" : (await canConnect(port)) && "up"), `${this.what} listening on ${port}`, timeoutMs, everyMs);
    if (state === "exited") throw new ChildExitedError(`${this.what} exited with ${this.proc.exitCode ?? this.proc.signalCode}: ${this.out.slice(-800)}`);
  }

  /** Sends a signal and returns at once (SIGSTOP: a hung process whose kernel still accepts connections; SIGCONT). */
  signal(sig: "SIGSTOP" | "SIGCONT"): void {
    if (this.isRunning) this.proc.kill(sig);
  }

  /** Sends `signal` (SIGKILL: a crash) and waits for the child to end; returns its exit code. */
  async stop(signal: "SIGTERM" | "SIGKILL" | "SIGINT" = "SIGKILL"): Promise<number | null> {
    if (this.isRunning) {
      // a stopped (SIGSTOP) child must run again to act on SIGTERM, and to die promptly under some kernels
      this.proc.kill("SIGCONT");
      this.proc.kill(signal);
    }
    return await this.exited;
  }

  private tell(): void {
    for (const w of [...this.waiters]) w();
  }

  private async collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
        this.out += decoder.decode(chunk, { stream: true });
        if (this.out.length > this.keepChars) this.out = this.out.slice(-this.keepChars);
        this.tell();
      }
    } catch {
      // the process ended
    }
  }
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export async function canConnect(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}
