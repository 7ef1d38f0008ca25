// A small tmpfs for disk-full tests: a real filesystem that runs out of space, freed by deleting a
// filler file created beforehand. Mounting needs root; the test fails with a clear message otherwise.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./index.ts";

export interface SmallDisk {
  /** the mounted directory */
  path: string;
  /** deletes the filler file: the space it held is free again */
  free(): void;
  /** unmounts (retrying while DuckDB still holds a file) and removes the mount point */
  cleanup(): void;
}

/** Mounts a tmpfs of `sizeMb` MB holding a filler file of `fillerMb` MB. */
export function smallDisk(sizeMb: number, fillerMb: number): SmallDisk {
  if (process.getuid?.() !== 0) {
    throw new Error(`this test mounts a ${sizeMb} MB tmpfs to fill the disk and must run as root (uid ${process.getuid?.()})`);
  }
  const dir = tempDir("edge-disk-");
  const path = join(dir.path, "mnt");
  mkdirSync(path);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}M`, "tmpfs", path]);
  const filler = join(path, "filler");
  writeFileSync(filler, Buffer.alloc(fillerMb << 20, 1));
  return {
    path,
    free: () => rmSync(filler, { force: true }),
    cleanup() {
      try {
        execFileSync("umount", [path], { stdio: "ignore" });
      } catch {
        // a handle still open (a failed test): detach it, the kernel frees it when the last one closes
        execFileSync("umount", ["-l", path], { stdio: "ignore" });
      }
      dir.cleanup();
    },
  };
}
