// What the test helpers start (in-process gateways, gateway children, devices, brokers, socat, pymodbus) is
// registered here with the test file that started it, so that nothing outlives its file.
//
// Why a registry and not the files' afterAll: measured with bun 1.4.5 (registry.test.ts shows the leak), a
// beforeAll that times out is not cancelled. No test of its file runs, the file's afterAll runs at once
// (and sees `undefined`), and the hook's body goes on during the next files. A gateway started that way
// kept its port, timers, DuckDB threads and CPU into unrelated later tests. Bun offers no per-file hook
// outside the file: a hook registered inside a running hook is ignored, and a preload's beforeAll and
// afterAll run once per run, while its beforeEach runs before every test of every file (after the file's
// own beforeAll). `Bun.main` is the file being run. So what a file left running is closed:
// - when its start completes after its file ended (the start goes on into the next file), and at once
//   when the timed-out hook starts something more after its file ended,
// - before any helper of a later file starts something (so a later beforeAll starts on a clean machine),
// - before every test (the preload's beforeEach, test/helpers/preload.ts),
// - at the end of the run (the preload's afterAll; children are also SIGKILLed at process exit, process.ts).
// A later file whose beforeAll starts nothing through these helpers still shares that beforeAll with a
// leftover: it is closed before that file's first test.
import type { Subprocess } from "bun";

/** Something started by a helper, as the registry sees it. */
export interface Registered {
  /** what it is, for messages */
  readonly what: string;
  /** the test file that started it (Bun.main at the start) */
  readonly file: string;
  /** stops it (once its start completed; nothing when the start failed) and forgets it; safe to call twice */
  close(): Promise<void>;
}

const open = new Set<Registered>();
/** every resource closed because its file had ended without closing it */
const closedLeftovers = new Set<Registered>();

/** the test files seen running so far (Bun.main at a registration or a sweep) */
const filesSeen = new Set<string>();

function currentFile(): string {
  filesSeen.add(Bun.main);
  return Bun.main;
}

/**
 * The file a start belongs to: the running file, unless the call comes from an earlier file's hook that
 * went on after its timeout (JSC's async stack traces keep the hook's frame across awaits and through
 * helpers, measured with bun 1.4.5); such a start belongs to that ended file and is closed as soon as it completes.
 */
function ownerOfStart(): string {
  const file = currentFile();
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 200;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  if (stack.includes(file)) return file;
  for (const earlier of filesSeen) if (stack.includes(earlier)) return earlier;
  return file;
}

/**
 * Registers a start under way: `starting` is the start, `stop` stops what it gave. Registered before the
 * start completes, so that a start a timed-out hook left going is found (and closed once it completes).
 */
export function register<T>(what: string, starting: Promise<T>, stop: (started: T) => Promise<unknown>): Registered {
  let closing: Promise<void> | null = null;
  const entry: Registered = {
    what,
    file: ownerOfStart(),
    close() {
      closing ??= starting
        .then(stop, () => undefined)
        .catch(() => undefined)
        .then(() => void open.delete(entry));
      return closing;
    },
  };
  open.add(entry);
  if (entry.file !== currentFile()) void closeLeftover(entry);
  starting.then(
    () => {
      // the start outlived its file (a timed-out beforeAll): nobody holds it any more
      if (!closing && entry.file !== currentFile()) void closeLeftover(entry);
    },
    () => open.delete(entry),
  );
  return entry;
}

/** Registers a child process: SIGKILLed when left over, forgotten when it exits. */
export function registerProcess(what: string, proc: Subprocess): Registered {
  const entry = register(what, Promise.resolve(proc), async (p) => {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill("SIGCONT"); // a stopped (SIGSTOP) process must run to die promptly under some kernels
      p.kill("SIGKILL");
    }
    await p.exited;
  });
  void proc.exited.then(() => entry.close());
  return entry;
}

function closeLeftover(entry: Registered): Promise<void> {
  closedLeftovers.add(entry);
  return entry.close();
}

/** Closes what earlier test files left running (waiting for starts still under way), before this file goes on. */
export async function closeLeftovers(): Promise<void> {
  const file = currentFile();
  await Promise.all([...open].filter((e) => e.file !== file).map(closeLeftover));
}

/** Closes everything still registered (the end of a run). */
export async function closeAll(): Promise<void> {
  await Promise.all([...open].map((e) => e.close()));
}

/** What is registered now (file and what), for tests of the harness. */
export function registered(): { file: string; what: string }[] {
  return [...open].map((e) => ({ file: e.file, what: e.what }));
}

/** What was closed as left over by an ended file, for tests of the harness. */
export function leftoversClosed(): { file: string; what: string }[] {
  return [...closedLeftovers].map((e) => ({ file: e.file, what: e.what }));
}
