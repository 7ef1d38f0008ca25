// CPU priority of user queries below ingest. A running DuckDB query keeps one thread of the N-API pool
// ("Bun Pool N") busy on a core for its whole duration; the log writer's frame encoding and appender
// flush run on the JS thread. Lowering the pool threads' priority (nice) lets the kernel give the JS
// thread the CPU first when both want it, so ingest keeps its rate while queries take what is left.
//
// Linux only (thread ids from /proc/self/task; setpriority on a thread id applies to that thread). The
// pool threads also carry the writer's BEGIN/COMMIT calls: those are short and mostly wait for fsync,
// so a lower CPU priority costs them little (measured in test/bench/query.bench.ts). A thread's nice
// value is only ever raised: lowering it again needs CAP_SYS_NICE.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";

const TASKS = "/proc/self/task";
const POOL_THREAD = /^Bun Pool \d+$/;

export class PoolPriority {
  private readonly done = new Set<number>();
  private readonly isSupported = process.platform === "linux" && existsSync(TASKS);

  constructor(private readonly nice: number) {}

  /** Lowers the priority of every pool thread not yet lowered (new ones start as the pool grows). */
  apply(): void {
    if (!this.isSupported || this.nice <= 0) return;
    let tids: string[];
    try {
      tids = readdirSync(TASKS);
    } catch {
      return;
    }
    for (const t of tids) {
      const tid = Number(t);
      if (this.done.has(tid)) continue;
      try {
        if (POOL_THREAD.test(readFileSync(`${TASKS}/${t}/comm`, "utf8").trim())) setPriority(tid, this.nice);
      } catch {
        // a thread that ended meanwhile, or a kernel that refuses: the queries run at normal priority
      }
      // checked once: a thread's name does not change, and others need no second look
      this.done.add(tid);
    }
  }
}
