// Plugin folders for the tests: written from source text, sealed and signed like `edgectl sign` does.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { signPlugin, sealFiles } from "../../../drivers/plugins/package.ts";
import { generateKeyPair, type KeyPair } from "../../../drivers/plugins/trust.ts";

export interface PluginSpec {
  name: string;
  version?: string;
  kind?: "driver" | "decoder";
  api?: { min: number; max: number };
  endpoints?: string[];
  /** the entry module's source (index.js) */
  source: string;
  /** extra files next to the entry */
  files?: Record<string, string>;
}

export function manifestText(s: PluginSpec): string {
  const api = s.api ?? { min: 1, max: 1 };
  return [
    `name = "${s.name}"`,
    `kind = "${s.kind ?? "driver"}"`,
    `version = "${s.version ?? "1.0.0"}"`,
    `entry = "index.js"`,
    `api = { min = ${api.min}, max = ${api.max} }`,
    `capabilities = { endpoints = ${JSON.stringify(s.endpoints ?? [])} }`,
    "",
  ].join("\n");
}

/** Writes the plugin folder `<root>/<folder ?? name>`, sealed; signed with `key` unless null. */
export async function writePlugin(root: string, s: PluginSpec, key: KeyPair | null, folder = s.name): Promise<string> {
  const dir = join(root, folder);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "plugin.toml"), manifestText(s));
  writeFileSync(join(dir, "index.js"), s.source);
  for (const [f, text] of Object.entries(s.files ?? {})) writeFileSync(join(dir, f), text);
  if (key) await signPlugin(dir, key.privatePem);
  else await sealFiles(dir);
  return dir;
}

export const newKey = (signer = "test-signer"): KeyPair => generateKeyPair(signer);

/** A driver plugin: one frame per tag per poll with a counter; `extra` goes into the instance. */
export function counterSource(extra = ""): string {
  return `export default (host) => {
  let tags = [], n = 0;
  return {
    init(i) { tags = i.tags; },
    poll() { n++; return tags.map((t) => ({ tag: t.tag, value: n })); },
    ${extra}
  };
};
`;
}

/**
 * A decoder plugin: every payload decodes to one frame `len` with its length; a batch holding the payload
 * "crash" ends the process (exit code 3), one holding "throw" throws in decode (the process lives).
 */
export const LENGTH_DECODER = `export default () => ({
  decode(batch) {
    const s = batch.map((b) => new TextDecoder().decode(b));
    if (s.includes("crash")) process.exit(3);
    if (s.includes("throw")) throw new RangeError("bad telegram");
    return s.map((p) => [{ tag: "len", value: p.length }]);
  },
});
`;
