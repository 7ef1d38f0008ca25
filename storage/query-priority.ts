// CPU priority of running queries below ingest. A running DuckDB query keeps one thread of the N-API pool
// ("Bun Pool N") busy on a core for its whole duration, next to the JS thread that encodes frames and
// flushes the appender and the pool thread that runs the writer's BEGIN/COMMIT. While queries run, a
// sampler looks at the pool threads every SAMPLE_MS: one that was on the CPU most of the interval is
// running a query (a commit is short and mostly waits for fsync), and gets `nice` more than the process's
// own nice value (a gateway started under nice 10 puts its queries at 20 -> 19, not at 10 beside ingest,
// and never above it: setting the absolute value did, found running the suite under nice); once it is
// idle again it gets the process's priority back. So the kernel gives ingest the CPU first, and queries what is left.
//
// Linux only (thread ids and CPU times from /proc/self/task; setpriority on a thread id applies to that
// thread). Giving a thread its priority back needs CAP_SYS_NICE (or RLIMIT_NICE): without it a thread
// stays at `nice` once it ran a query, which slows the writer's calls that later run on it a little.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

const TASKS = "/proc/self/task";
const POOL_THREAD = /^Bun Pool \d+$/;
const SAMPLE_MS = 100;
/** clock ticks per second of /proc CPU times (USER_HZ, 100 on Linux) */
const TICKS_PER_S = 100;
/** on the CPU at least this share of an interval: running a query */
const BUSY_SHARE = 0.6;

export class QueryPriority {
  private readonly isSupported = process.platform === "linux" && existsSync(TASKS);
  private readonly poolThreads = new Set<number>();
  private readonly otherThreads = new Set<number>();
  private readonly lastTicks = new Map<number, number>();
  private readonly lowered = new Set<number>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private running = 0;
  private released = false;

  /** the process's own nice value when the engine started: `nice` counts from it, and restoring goes back to it */
  private readonly base: number;

  /** `nice`: how much lower than the process's own priority a running query's thread goes (the result is capped at 19). */
  constructor(private readonly nice: number) {
    let base = 0;
    try {
      base = getPriority();
    } catch {
      // not readable: count from 0
    }
    this.base = base;
  }

  /** The nice value of a thread running a query: relative to the process's own (a gateway started with nice 10 keeps its queries below its ingest). */
  get queryNice(): number {
    return Math.min(19, this.base + this.nice);
  }

  /** A query starts running in DuckDB. */
  queryStarted(): void {
    this.running++;
    if (this.timer || this.released || !this.isSupported || this.nice <= 0) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref?.();
  }

  /** A query left DuckDB; with none left, the threads get their priority back. */
  queryEnded(): void {
    this.running = Math.max(0, this.running - 1);
    if (this.running > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    for (const tid of [...this.lowered]) this.restore(tid);
  }

  /**
   * Every lowered thread gets its normal priority back and none is lowered again: at stop, so that the
   * interrupted queries get the CPU they need to notice the interrupt (a niced thread on a busy machine
   * can take seconds to run the few instructions that end its query).
   */
  release(): void {
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const tid of [...this.lowered]) this.restore(tid);
  }

  private sample(): void {
    const busyTicks = (SAMPLE_MS / 1000) * TICKS_PER_S * BUSY_SHARE;
    for (const tid of this.findPoolThreads()) {
      const ticks = cpuTicks(tid);
      if (ticks === null) {
        this.poolThreads.delete(tid);
        this.lowered.delete(tid);
        continue;
      }
      const last = this.lastTicks.get(tid);
      this.lastTicks.set(tid, ticks);
      if (last === undefined) continue;
      const isBusy = ticks - last >= busyTicks;
      if (isBusy && !this.lowered.has(tid)) {
        try {
          setPriority(tid, this.queryNice);
          this.lowered.add(tid);
        } catch {
          // refused by the kernel: this query runs at normal priority
        }
      } else if (!isBusy && this.lowered.has(tid)) {
        this.restore(tid);
      }
    }
  }

  private restore(tid: number): void {
    try {
      setPriority(tid, this.base);
      this.lowered.delete(tid);
    } catch {
      // no CAP_SYS_NICE: the thread keeps the lower priority (see the header); not tried again
      this.lowered.delete(tid);
    }
  }

  private findPoolThreads(): Set<number> {
    let tids: string[] = [];
    try {
      tids = readdirSync(TASKS);
    } catch {
      return this.poolThreads;
    }
    for (const t of tids) {
      const tid = Number(t);
      if (this.poolThreads.has(tid) || this.otherThreads.has(tid)) continue;
      try {
        (POOL_THREAD.test(readFileSync(`${TASKS}/${t}/comm`, "utf8").trim()) ? this.poolThreads : this.otherThreads).add(tid);
      } catch {
        // the thread ended meanwhile
      }
    }
    return this.poolThreads;
  }
}

/** utime + stime of a thread in clock ticks, or null when it is gone. */
function cpuTicks(tid: number): number | null {
  try {
    const stat = readFileSync(`${TASKS}/${tid}/stat`, "utf8");
    // fields after the command name (which may hold spaces): state is the 1st, utime the 12th, stime the 13th
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}
