// Editing a configuration file of a running gateway (for PUT /api/config/files/:name and the console's
// editor): an edit is checked as a whole with the other files as they are, by THE config load
// (server/config-check.ts) run over a scratch directory holding links to every other entry of the config
// directory (so relative references such as a secret or JWKS file resolve as they will), then written
// atomically (temporary file + rename), then applied by hot reload. A refused edit changes nothing: the
// check refuses before anything is written, and a reload that still refuses puts the previous text back.
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { ConfigError, REDACTED, redactConfigText, redactSecrets } from "../schemas/index.ts";
import { unifiedDiff } from "../schemas/text-diff.ts";
import { checkConfig } from "./config-check.ts";
import type { GatewayContext } from "./context.ts";
import { reloadConfig, type ReloadResult } from "./reload.ts";

/** The files of a config directory, in the order the gateway reads them. */
export const CONFIG_FILES = ["gateway.yml", "endpoints.yml", "drivers.yml", "variables.yml"] as const;
export type ConfigFileName = (typeof CONFIG_FILES)[number];

export const isConfigFile = (name: string): name is ConfigFileName => (CONFIG_FILES as readonly string[]).includes(name);

export interface ConfigProblem {
  /** the file's name within the config directory */
  file: string;
  /** where in it (`tags[3].address.area`, `line 4, column 2`); "" for the whole file */
  path: string;
  message: string;
}

export interface CheckResult {
  ok: boolean;
  problems: ConfigProblem[];
  /** unified diff of the running file (on disk) to the edit, secret values redacted on both sides */
  diff: string;
}

/** An edit that cannot even be checked: its text holds the redaction marker of a secret shown redacted. */
export class RedactedEdit extends Error {
  override name = "RedactedEdit";
}

/** The text of a config file on disk ("" when it does not exist: gateway.yml and endpoints.yml are optional). */
export function fileText(dir: string, name: ConfigFileName): string {
  const path = join(dir, name);
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

function refuseRedacted(text: string): void {
  if (text.includes(REDACTED)) {
    throw new RedactedEdit(`the text holds ${REDACTED} where a secret was hidden: keep secrets in files (e.g. auth.hs256SecretFile) or \${ENV} references, and put them there instead`);
  }
}

/** A problem as the editor shows it: the file by name, the message without the scratch directory's path. */
function problemOf(e: ConfigError, scratch: string, dir: string): ConfigProblem {
  const file = e.file.startsWith(scratch) ? relative(scratch, e.file) || basename(dir) : e.file;
  return { file, path: e.path, message: redactSecrets(e.detail.replaceAll(scratch, dir)) };
}

/** Checks the config directory as it would be with `name` holding `text`; never throws for a bad edit. */
export async function checkEdit(dir: string, name: ConfigFileName, text: string): Promise<CheckResult> {
  refuseRedacted(text);
  const scratch = mkdtempSync(join(tmpdir(), "edge-config-check-"));
  try {
    for (const entry of readdirSync(dir)) if (entry !== name) symlinkSync(join(dir, entry), join(scratch, entry));
    writeFileSync(join(scratch, name), text);
    const { problems } = await checkConfig(scratch);
    const diff = unifiedDiff(redactConfigText(fileText(dir, name)), redactConfigText(text), name);
    return { ok: problems.length === 0, problems: problems.map((p) => problemOf(p, scratch, dir)), diff };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Writes a file so that a reader (the watcher, a crash) sees the old text or the new one, never a part. */
function writeAtomically(path: string, text: string): void {
  const tmp = join(path, "..", `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export interface EditResult extends CheckResult {
  /** the reload's result when the edit was written (absent: refused by the check, nothing written) */
  reload?: ReloadResult;
}

/**
 * Checks, writes and applies an edit. Refused by the check: nothing is written. Refused by the reload
 * (the directory changed meanwhile): the previous text is put back, so disk and gateway stay as they were.
 */
export async function applyEdit(ctx: GatewayContext, name: ConfigFileName, text: string): Promise<EditResult> {
  const dir = ctx.config.dir;
  const checked = await checkEdit(dir, name, text);
  if (!checked.ok) return checked;
  const path = join(dir, name);
  const existed = existsSync(path);
  const before = fileText(dir, name);
  writeAtomically(path, text);
  const reload = await reloadConfig(ctx);
  if (!reload.ok) {
    if (existed) writeAtomically(path, before);
    else unlinkSync(path);
    const file = reload.file ? relative(dir, reload.file) || reload.file : name;
    return { ...checked, ok: false, reload, problems: [{ file, path: reload.path ?? "", message: reload.error ?? "the reload refused the edit" }] };
  }
  return { ...checked, reload };
}
