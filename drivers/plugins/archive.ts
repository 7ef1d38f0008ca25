// A plugin folder shipped as one upload: a tar archive (optionally gzip'd) or the files of a multipart
// form (a browser's folder picker), written into a staging folder. Every path is checked (relative, no
// `..`, no hidden trick) before anything is written; a single top folder (`counter/plugin.toml`) is
// stripped so that both `tar -C counter .` and `tar counter` archives work.
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";

export class ArchiveError extends Error {
  override name = "ArchiveError";
}

const MAX_FILES = 1000;

/** The safe relative path of an archive member, or an ArchiveError naming it. */
export function memberPath(name: string): string {
  const p = name.replace(/^\.\//, "");
  if (!p || p.startsWith("/") || p.includes("\\") || p.includes("\0") || p.split("/").some((s) => s === ".." || s === ".")) {
    throw new ArchiveError(`archive member '${name}' has an unsafe path`);
  }
  return p;
}

/** Files by path with a single common top folder removed (when every path has it and plugin.toml is under it). */
export function stripTopFolder<T>(files: Map<string, T>): Map<string, T> {
  const paths = [...files.keys()];
  const top = paths[0]?.split("/")[0];
  if (!top || files.has("plugin.toml") || !paths.every((p) => p.startsWith(`${top}/`))) return files;
  return new Map([...files].map(([p, f]) => [p.slice(top.length + 1), f]));
}

/** Reads a tar or tar.gz into files by checked path (directories and empty names skipped). */
export async function filesOfTar(bytes: Uint8Array): Promise<Map<string, Blob>> {
  let entries: Map<string, Blob>;
  try {
    entries = await new Bun.Archive(bytes).files();
  } catch (e) {
    throw new ArchiveError(`not a tar or tar.gz archive: ${(e as Error).message}`);
  }
  const out = new Map<string, Blob>();
  for (const [name, file] of entries) if (!name.endsWith("/")) out.set(memberPath(name), file);
  return out;
}

/** Writes the files under `dir`; refuses an archive with too many files or without plugin.toml. */
export async function writeFiles(dir: string, files: Map<string, Blob>): Promise<void> {
  const flat = stripTopFolder(files);
  if (flat.size > MAX_FILES) throw new ArchiveError(`the archive holds ${flat.size} files (at most ${MAX_FILES})`);
  if (!flat.has("plugin.toml")) throw new ArchiveError("the archive has no plugin.toml at its top (or in its one top folder)");
  for (const [p, f] of flat) {
    const dest = join(dir, p);
    await mkdir(dirname(dest), { recursive: true });
    await Bun.write(dest, f);
  }
}
