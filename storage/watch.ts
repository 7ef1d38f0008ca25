// Waiting for files to change: the end of a wait to retry when what blocked the retry is fixed on disk
// (a certificate renewed, a CA file corrected) or a device node comes back (a USB serial adapter plugged
// in again, its /dev entry created anew).
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * Resolves once one of `paths` is written, created, replaced or removed (`settleMs` after the last
 * change: a certificate and its key copied one after the other are read as a pair), or when `signal`
 * aborts; never when no path is given. Watches the files' folders, not the files: a file replaced by a
 * rename (an editor, `mv`, certbot) or a device node created again is a new inode that a watch on the
 * old one never reports, and a missing file has no inode to watch.
 */
export function filesChanged(paths: readonly string[], signal: AbortSignal, settleMs = 200): Promise<void> {
  const byDir = new Map<string, Set<string>>();
  for (const path of paths) byDir.set(dirname(path), (byDir.get(dirname(path)) ?? new Set<string>()).add(basename(path)));
  return new Promise<void>((resolve) => {
    const watchers: FSWatcher[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = () => {
      clearTimeout(timer);
      for (const w of watchers) w.close();
      signal.removeEventListener("abort", done);
      resolve();
    };
    if (signal.aborted) return done();
    signal.addEventListener("abort", done, { once: true });
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, (_event, file) => {
          if (file !== null && !names.has(String(file))) return;
          clearTimeout(timer);
          timer = setTimeout(done, settleMs);
        });
        // a folder that goes away: no more changes to report from it; the caller's timer still runs
        w.on("error", () => w.close());
        watchers.push(w);
      } catch {
        // a missing folder cannot change either: only the caller's timer or the abort ends the wait
      }
    }
  });
}
