// Trust: a plugin runs only if its manifest is signed (ed25519) by a key in the gateway's
// authorized_keys and every file matches the manifest's SHA-256; checked in that order, before any
// of its code runs, and each refusal names what failed. Unsigned plugins pass only under the explicit
// development switch, and say so in their status.
//
// Formats (one line each, `#` comments):
//   authorized_keys: `ed25519 <base64 of the 32-byte public key> <signer name>`
//   plugin.sig:      `ed25519 <base64 of the 32-byte public key> <base64 of the 64-byte signature>`
// The signature is over the exact bytes of plugin.toml (which lists every file's SHA-256).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { PluginManifest } from "../../schemas/plugins.ts";
import { checkFiles, MANIFEST_FILE, parseManifest, PluginRefused, SIGNATURE_FILE } from "./manifest.ts";
import { PLUGIN_API_VERSION } from "./protocol.ts";

export const AUTHORIZED_KEYS_FILE = "authorized_keys";

export interface AuthorizedKey {
  /** base64 of the raw 32-byte public key */
  key: string;
  signer: string;
}

export class KeyFileError extends Error {
  override name = "KeyFileError";
}

/** A raw 32-byte ed25519 public key (base64) as a KeyObject. */
export function publicKeyFromRaw(b64: string): KeyObject {
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 32) throw new KeyFileError(`an ed25519 public key is 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
}

export function rawPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: "jwk" }) as { x: string };
  return Buffer.from(jwk.x, "base64url").toString("base64");
}

/** Parses authorized_keys text; a bad line is an error naming its line number. */
export function parseAuthorizedKeys(text: string, file = AUTHORIZED_KEYS_FILE): AuthorizedKey[] {
  const keys: AuthorizedKey[] = [];
  text.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith("#")) return;
    const [type, key, ...rest] = t.split(/\s+/);
    if (type !== "ed25519" || !key) throw new KeyFileError(`${file}:${i + 1}: expected 'ed25519 <base64 public key> <signer>'`);
    try {
      publicKeyFromRaw(key);
    } catch (e) {
      throw new KeyFileError(`${file}:${i + 1}: ${(e as Error).message}`);
    }
    keys.push({ key, signer: rest.join(" ") || `${key.slice(0, 8)}…` });
  });
  return keys;
}

/** The keys of a config dir; no file = no key (every signed plugin is then refused with reason key). */
export async function readAuthorizedKeys(configDir: string): Promise<AuthorizedKey[]> {
  const path = join(configDir, AUTHORIZED_KEYS_FILE);
  const text = await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return "";
    throw e;
  });
  return parseAuthorizedKeys(text, path);
}

export interface KeyPair {
  privatePem: string;
  /** the authorized_keys line */
  publicLine: string;
}

export function generateKeyPair(signer: string): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(), publicLine: `ed25519 ${rawPublicKey(publicKey)} ${signer}` };
}

/** The plugin.sig line for these manifest bytes. */
export function signManifest(manifest: Uint8Array, privatePem: string): string {
  const priv = createPrivateKey(privatePem);
  const pub = rawPublicKey(createPublicKey(priv));
  return `ed25519 ${pub} ${edSign(null, manifest, priv).toString("base64")}\n`;
}

export interface VerifiedPlugin {
  dir: string;
  manifest: PluginManifest;
  /** SHA-256 of plugin.toml's bytes (hex): which version a folder holds, for the registry and its watcher */
  manifestSha256: string;
  /** the signer's name from authorized_keys; absent when unsigned */
  signer?: string;
  unsigned: boolean;
}

export interface VerifyOptions {
  keys: readonly AuthorizedKey[];
  /** development switch: a plugin without plugin.sig loads (and is shown as unsigned) */
  allowUnsigned?: boolean;
}

/** The name the manifest claims, for messages only (an upload's staging folder has a random name). */
function nameHint(manifest: Uint8Array): string | undefined {
  try {
    const name = (Bun.TOML.parse(new TextDecoder().decode(manifest)) as { name?: unknown }).name;
    return typeof name === "string" && /^[a-z][a-z0-9_-]{0,63}$/.test(name) ? name : undefined;
  } catch {
    return undefined;
  }
}

async function readOptional(path: string): Promise<Buffer | null> {
  return readFile(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return null;
    throw e;
  });
}

/** Checks the signature line against the authorized keys; returns the signer. */
function checkSignature(name: string, manifest: Uint8Array, sigText: string, keys: readonly AuthorizedKey[]): string {
  const [type, key, sig] = sigText.trim().split(/\s+/);
  if (type !== "ed25519" || !key || !sig) throw new PluginRefused(name, "signature", `${SIGNATURE_FILE} is not 'ed25519 <public key> <signature>'`, SIGNATURE_FILE);
  const known = keys.find((k) => k.key === key);
  if (!known) throw new PluginRefused(name, "key", `signed by key ${key.slice(0, 12)}…, which is not in ${AUTHORIZED_KEYS_FILE} (${keys.length} key${keys.length === 1 ? "" : "s"} there)`, SIGNATURE_FILE);
  let ok = false;
  try {
    ok = edVerify(null, manifest, publicKeyFromRaw(key), Buffer.from(sig, "base64"));
  } catch {
    ok = false;
  }
  if (!ok) throw new PluginRefused(name, "signature", `the signature of ${MANIFEST_FILE} does not verify with the key of '${known.signer}' (manifest changed after signing?)`, SIGNATURE_FILE);
  return known.signer;
}

/**
 * The whole trust check of a plugin folder, in order: manifest present, signature (or the development
 * switch), key authorized, signature valid, manifest well-formed, API range includes ours, every file's
 * checksum. Throws PluginRefused naming what failed; nothing of the plugin has run.
 */
export async function verifyPlugin(dir: string, opts: VerifyOptions): Promise<VerifiedPlugin> {
  const manifestBytes = await readOptional(join(dir, MANIFEST_FILE));
  if (!manifestBytes) throw new PluginRefused(basename(dir), "manifest", `${MANIFEST_FILE} is missing`, MANIFEST_FILE);
  const folder = nameHint(manifestBytes) ?? basename(dir);
  const sig = await readOptional(join(dir, SIGNATURE_FILE));
  let signer: string | undefined;
  if (sig) signer = checkSignature(folder, manifestBytes, sig.toString("utf8"), opts.keys);
  else if (!opts.allowUnsigned) throw new PluginRefused(folder, "signature", `${SIGNATURE_FILE} is missing (unsigned plugins load only with plugins.allowUnsigned, for development)`, SIGNATURE_FILE);
  const manifest = parseManifest(manifestBytes, folder);
  if (PLUGIN_API_VERSION < manifest.api.min || PLUGIN_API_VERSION > manifest.api.max) {
    throw new PluginRefused(manifest.name, "api", `the plugin needs plugin API ${manifest.api.min}..${manifest.api.max}, the gateway speaks ${PLUGIN_API_VERSION}`);
  }
  await checkFiles(dir, manifest);
  const manifestSha256 = createHash("sha256").update(manifestBytes).digest("hex");
  return { dir, manifest, manifestSha256, unsigned: !sig, ...(signer ? { signer } : {}) };
}
