// Sealing a plugin folder for distribution (edgectl sign, the tests): the manifest's [files] table is
// rewritten with the SHA-256 of every file of the folder, then plugin.sig is written over the result.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { listPluginFiles, MANIFEST_FILE, sha256File, SIGNATURE_FILE } from "./manifest.ts";
import { signManifest } from "./trust.ts";

/** The manifest text with its [files] table (wherever it was) replaced by `files`, at the end. */
export function withFilesTable(toml: string, files: Record<string, string>): string {
  const lines = toml.split("\n");
  const out: string[] = [];
  let inFiles = false;
  for (const line of lines) {
    const header = /^\s*\[([^\]]+)\]\s*(#.*)?$/.exec(line);
    if (header) inFiles = header[1]!.trim() === "files";
    if (!inFiles) out.push(line);
  }
  while (out.length && out[out.length - 1]!.trim() === "") out.pop();
  const table = Object.entries(files).map(([f, h]) => `${JSON.stringify(f)} = "${h}"`);
  return `${out.join("\n")}\n\n[files]\n${table.join("\n")}\n`;
}

/** Rewrites [files] with the folder's checksums; returns the new manifest bytes. */
export async function sealFiles(dir: string): Promise<Uint8Array> {
  const files: Record<string, string> = {};
  for (const f of await listPluginFiles(dir)) files[f] = await sha256File(join(dir, f));
  const text = withFilesTable(await readFile(join(dir, MANIFEST_FILE), "utf8"), files);
  await writeFile(join(dir, MANIFEST_FILE), text);
  return new TextEncoder().encode(text);
}

/** Seals and signs the folder with the private key (PKCS#8 PEM). */
export async function signPlugin(dir: string, privatePem: string): Promise<void> {
  const manifest = await sealFiles(dir);
  await writeFile(join(dir, SIGNATURE_FILE), signManifest(manifest, privatePem));
}
