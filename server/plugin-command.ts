// `edgectl keygen|sign|verify|plugin ...`: the plugin author's and the operator's side of plugins.
// keygen/sign/verify work on local folders (drivers/plugins/trust.ts, package.ts); `plugin new` writes a
// scaffold that signs and loads as it is; `plugin list|load|unload|swap|rollback` ask a running gateway
// (server/api/plugins.ts) with an `admin` token.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { listPluginFiles, MANIFEST_FILE, PluginRefused, SIGNATURE_FILE } from "../drivers/plugins/manifest.ts";
import { signPlugin } from "../drivers/plugins/package.ts";
import { AUTHORIZED_KEYS_FILE, generateKeyPair, parseAuthorizedKeys, verifyPlugin } from "../drivers/plugins/trust.ts";
import { pluginRequest } from "./api/plugins.ts";
import { pluginScaffold } from "./plugin-scaffold.ts";

export const PLUGIN_USAGE = `  keygen --name SIGNER [--out DIR]
                          a new ed25519 signing key: DIR/SIGNER.key (private, mode 600) and DIR/SIGNER.pub
                          (the line to add to the gateway's <config>/authorized_keys)
  sign <plugin dir> --key FILE
                          write the SHA-256 of every file into plugin.toml [files] and sign it (plugin.sig)
  verify <plugin dir> [--config DIR | --keys FILE] [--allow-unsigned]
                          the gateway's trust check of a plugin folder: prints the signer, or what failed
  plugin new driver|decoder <name> [--out DIR]
                          a plugin scaffold (plugin.toml, index.js, README.md) that signs and loads as it is
  plugin list|load <dir>|swap <name> <dir>|rollback <name>|unload <name> [--url URL] [--token JWT]
                          plugins of a running gateway (GET/POST /api/plugins; load, swap, rollback and
                          unload need a token with scope "admin"; JWT default: $EDGE_TOKEN)`;

class UsageError extends Error {
  override name = "UsageError";
}

function keygen(args: string[]): number {
  const { values } = parseArgs({ args, options: { name: { type: "string" }, out: { type: "string" } } });
  if (!values.name || !/^[\w.@-]+$/.test(values.name)) throw new UsageError("keygen: --name SIGNER is needed (letters, digits, . @ - _)");
  const out = resolve(values.out ?? ".");
  const keyFile = join(out, `${values.name}.key`);
  if (existsSync(keyFile)) throw new UsageError(`keygen: ${keyFile} exists; not overwritten`);
  mkdirSync(out, { recursive: true });
  const pair = generateKeyPair(values.name);
  writeFileSync(keyFile, pair.privatePem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(join(out, `${values.name}.pub`), `${pair.publicLine}\n`);
  console.log(`private key: ${keyFile} (keep it secret)\nadd this line to the gateway's <config>/${AUTHORIZED_KEYS_FILE}:\n${pair.publicLine}`);
  return 0;
}

async function sign(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { key: { type: "string" } }, allowPositionals: true });
  const dir = positionals[0];
  if (!dir || !values.key) throw new UsageError("sign: sign <plugin dir> --key FILE");
  await signPlugin(resolve(dir), readFileSync(values.key, "utf8"));
  console.log(`signed ${dir}: ${(await listPluginFiles(resolve(dir))).length} files in ${MANIFEST_FILE}, ${SIGNATURE_FILE} written`);
  return 0;
}

async function verify(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { config: { type: "string" }, keys: { type: "string" }, "allow-unsigned": { type: "boolean" } }, allowPositionals: true });
  const dir = positionals[0];
  if (!dir) throw new UsageError("verify: verify <plugin dir> [--config DIR | --keys FILE]");
  const keysFile = values.keys ?? join(values.config ?? process.env.EDGE_CONFIG_DIR ?? "config", AUTHORIZED_KEYS_FILE);
  const keys = existsSync(keysFile) ? parseAuthorizedKeys(readFileSync(keysFile, "utf8"), keysFile) : [];
  try {
    const p = await verifyPlugin(resolve(dir), { keys, allowUnsigned: values["allow-unsigned"] === true });
    const m = p.manifest;
    console.log(`ok: ${m.name} ${m.version} (${m.kind}, api ${m.api.min}..${m.api.max}) ${p.unsigned ? "UNSIGNED (development only)" : `signed by ${p.signer}`}`);
    return 0;
  } catch (e) {
    if (!(e instanceof PluginRefused)) throw e;
    console.error(e.message);
    return 1;
  }
}

/** The folder as a tar archive (the body of POST /api/plugins). */
async function tarOf(dir: string): Promise<Uint8Array<ArrayBuffer>> {
  const files: Record<string, Uint8Array> = {};
  // bytes, not Bun.file handles: the archive writer does not read lazy file blobs
  for (const f of [MANIFEST_FILE, ...(existsSync(join(dir, SIGNATURE_FILE)) ? [SIGNATURE_FILE] : []), ...(await listPluginFiles(dir))]) files[f] = await Bun.file(join(dir, f)).bytes();
  return new Uint8Array(await new Bun.Archive(files).bytes());
}

async function remote(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { url: { type: "string" }, token: { type: "string" } }, allowPositionals: true });
  const base = (values.url ?? `http://127.0.0.1:${process.env.EDGE_HTTP_PORT || 8080}`).replace(/\/+$/, "");
  const token = values.token ?? process.env.EDGE_TOKEN;
  const [op, a, b] = positionals;
  const upload = async (dir: string) => ({ bytes: await tarOf(resolve(dir)), type: "application/x-tar" });
  let answer: unknown;
  if (op === "list") answer = await pluginRequest(base, token, "GET", "/api/plugins");
  else if (op === "load" && a) answer = await pluginRequest(base, token, "POST", "/api/plugins", await upload(a));
  else if (op === "swap" && a && b) answer = await pluginRequest(base, token, "POST", `/api/plugins/${encodeURIComponent(a)}/swap`, await upload(b));
  else if ((op === "rollback" || op === "unload") && a) answer = await pluginRequest(base, token, "POST", `/api/plugins/${encodeURIComponent(a)}/${op}`);
  else throw new UsageError("plugin: list | load <dir> | swap <name> <dir> | rollback <name> | unload <name> | new driver|decoder <name>");
  console.log(JSON.stringify(answer, null, 2));
  return 0;
}

function scaffold(args: string[]): number {
  const { values, positionals } = parseArgs({ args, options: { out: { type: "string" } }, allowPositionals: true });
  const [kind, name] = positionals;
  if ((kind !== "driver" && kind !== "decoder") || !name || !/^[a-z][a-z0-9_-]{0,63}$/.test(name)) throw new UsageError("plugin new driver|decoder <name> (name: lower case, digits, - and _)");
  const dir = resolve(values.out ?? ".", name);
  if (existsSync(dir)) throw new UsageError(`plugin new: ${dir} exists; not overwritten`);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(pluginScaffold(kind, name))) writeFileSync(join(dir, file), text);
  console.log(`wrote ${dir}\nnext: edgectl sign ${basename(dir)} --key <signer>.key; copy the folder to <config>/plugins/ (or edgectl plugin load ${basename(dir)})`);
  return 0;
}

async function plugin(args: string[]): Promise<number> {
  return args[0] === "new" ? scaffold(args.slice(1)) : remote(args);
}

/** The commands this file adds to edgectl; a usage or request error is one line on stderr, exit 2 or 1. */
export const pluginCommands: Record<string, (args: string[]) => Promise<number>> = Object.fromEntries(
  Object.entries({ keygen: async (a: string[]) => keygen(a), sign, verify, plugin }).map(([name, run]) => [
    name,
    async (args: string[]) => {
      try {
        return await run(args);
      } catch (e) {
        if (e instanceof UsageError) {
          console.error(e.message);
          return 2;
        }
        if ((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) throw e;
        console.error(`${name}: ${(e as Error).message}`);
        return 1;
      }
    },
  ]),
);
