// Reading a plugin folder: plugin.toml parsed and checked against its schema, the files of the folder
// listed with their SHA-256. Pure checks, no trust decision (trust.ts decides, in order).
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { PluginManifest, type RefusalReason } from "../../schemas/plugins.ts";
import { readablePath } from "../../schemas/validate.ts";

export const MANIFEST_FILE = "plugin.toml";
export const SIGNATURE_FILE = "plugin.sig";

/** A plugin refused, with what failed (the first word of the message) and where. */
export class PluginRefused extends Error {
  override name = "PluginRefused";
  constructor(
    readonly plugin: string,
    readonly reason: RefusalReason,
    message: string,
    readonly file?: string,
  ) {
    super(`plugin '${plugin}' refused: ${reason}: ${message}`);
  }
  /** plain data for the `plugin.refused` event and the API */
  toRefusal(): { plugin: string; reason: RefusalReason; message: string; file?: string } {
    return { plugin: this.plugin, reason: this.reason, message: this.message, ...(this.file ? { file: this.file } : {}) };
  }
}

/** Parses and checks the manifest bytes; `folder` names the plugin in messages until its name is known. */
export function parseManifest(bytes: Uint8Array, folder: string): PluginManifest {
  let raw: unknown;
  try {
    raw = Bun.TOML.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new PluginRefused(folder, "manifest", `${MANIFEST_FILE} is not valid TOML: ${(e as Error).message}`, MANIFEST_FILE);
  }
  const withDefaults = Value.Default(PluginManifest, raw);
  const first = Value.Errors(PluginManifest, withDefaults).First();
  if (first) throw new PluginRefused(folder, "manifest", `${MANIFEST_FILE}: ${readablePath(first.path, "")}: ${first.message}`, MANIFEST_FILE);
  const m = withDefaults as PluginManifest;
  if (m.api.min > m.api.max) throw new PluginRefused(m.name, "manifest", `${MANIFEST_FILE}: api.min ${m.api.min} is above api.max ${m.api.max}`, MANIFEST_FILE);
  if (!(m.entry in m.files)) throw new PluginRefused(m.name, "manifest", `${MANIFEST_FILE}: the entry '${m.entry}' is not listed in [files]`, MANIFEST_FILE);
  return m;
}

/** Every file of the folder (recursively, `/`-separated relative paths) except the manifest and its signature. */
export async function listPluginFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split("\\").join("/"))
    .filter((f) => f !== MANIFEST_FILE && f !== SIGNATURE_FILE)
    .sort();
}

export async function sha256File(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

/**
 * Every listed file has its checksum, and no file is there that the manifest does not list (an extra
 * module next to the entry could be imported by it unsigned).
 */
export async function checkFiles(dir: string, m: PluginManifest): Promise<void> {
  const present = await listPluginFiles(dir);
  for (const f of present) if (!(f in m.files)) throw new PluginRefused(m.name, "checksum", `${f} is in the folder but not listed in the manifest`, f);
  for (const [f, want] of Object.entries(m.files)) {
    if (!present.includes(f)) throw new PluginRefused(m.name, "checksum", `${f} is listed in the manifest but missing`, f);
    const got = await sha256File(join(dir, f));
    if (got !== want) throw new PluginRefused(m.name, "checksum", `${f} has SHA-256 ${got.slice(0, 12)}…, the manifest says ${want.slice(0, 12)}…`, f);
  }
}
