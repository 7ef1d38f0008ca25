// How the process stops: the first stop signal starts one clean stop (producers, bridges, then the log's
// flush and checkpoint), a second during the stop is ignored with a log line, a third forces the exit.
// Also: stop when the launcher that started us is gone (`npm start` killed), so no gateway is orphaned.
import type { Logger } from "pino";

// not SIGHUP: a handler would override the ignore that `nohup` sets, and stop a gateway meant to outlive its terminal
export const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

export interface StopSignalsOptions {
  /** the clean stop (`reason`: the signal, or why the stop was requested); its promise settling ends the process */
  stop(reason: string): Promise<void>;
  logger: Logger;
  /** process.exit unless a test says otherwise */
  exit?: (code: number) => void;
  /**
   * Copies of one signal arriving this close together count once. One Ctrl-C under `npm start` reaches
   * the gateway up to three times within a few milliseconds: from the terminal (to the whole process
   * group) and forwarded by npm and by .ci/bootstrap.mjs. Without this the copies alone force the exit.
   */
  coalesceMs?: number;
}

/** Installs the handlers; returns a request function (used by the parent watch) and an uninstall. */
export function handleStopSignals(opts: StopSignalsOptions): { request(reason: string): void; uninstall(): void } {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const coalesceMs = opts.coalesceMs ?? 250;
  let requests = 0;
  let lastAt = Number.NEGATIVE_INFINITY;

  const request = (reason: string) => {
    const now = performance.now();
    if (requests > 0 && now - lastAt < coalesceMs) return; // the same request delivered again
    lastAt = now;
    requests++;
    if (requests === 1) {
      opts.logger.info({ reason }, "shutting down (a second signal is ignored, a third forces the exit)");
      opts.stop(reason).then(
        () => exit(0),
        (err: unknown) => {
          opts.logger.error({ err }, "stop failed");
          exit(1);
        },
      );
    } else if (requests === 2) {
      opts.logger.warn({ reason }, "stop in progress: signal ignored (send it once more to force the exit without a clean stop)");
    } else {
      opts.logger.error({ reason }, "forced exit during the stop: the last batch may be lost and the log replays its WAL at the next start");
      exit(1);
    }
  };
  const handlers = STOP_SIGNALS.map((sig) => [sig, () => request(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  return {
    request,
    uninstall: () => {
      for (const [sig, h] of handlers) process.off(sig, h);
    },
  };
}

/**
 * Calls `onGone` once when process `launcherPid` is no longer our parent (it died and we were
 * re-parented). .ci/bootstrap.mjs sets EDGE_STOP_WITH_PARENT to its pid: if it is killed outright
 * (SIGKILL, which it cannot forward), the gateway still stops instead of holding every port.
 */
export function watchParent(launcherPid: number, onGone: () => void, everyMs = 500): () => void {
  const timer = setInterval(() => {
    if (process.ppid === launcherPid) return;
    clearInterval(timer);
    onGone();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
