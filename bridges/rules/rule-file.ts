// A rule file (rules/<name>.js): loaded into its sandbox, its exported `meta` validated against the
// schema (schemas/rules.ts) and the tag catalog. Every refusal names the file and, where it can, the line:
// a syntax error by QuickJS's position, a meta problem by the line of the offending value in the text.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Catalog } from "../../schemas/catalog.ts";
import { tagSource } from "../../schemas/config.ts";
import { ConfigError } from "../../schemas/errors.ts";
import { RuleMeta } from "../../schemas/rules.ts";
import { parseWithSchema } from "../../schemas/validate.ts";
import { DEFAULT_LIMITS, localSandbox, RuleLoadError, type RuleExports, type RuleSandbox, type SandboxFactory, type SandboxLimits } from "./sandbox.ts";

export { RuleLoadError };

/** A rule name is its file name without `.js`: also the cursor `rule:<name>` and the actor. */
export const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export interface RuleSpec {
  name: string;
  /** the path shown in errors (relative to the config directory, e.g. rules/pump.js) */
  file: string;
  source: string;
  meta: RuleMeta;
  limits: SandboxLimits;
}

export const ruleNameOf = (file: string): string => basename(file).replace(/\.js$/, "");

/** The line (1-based) of the first occurrence of `needle` after the `meta` declaration, or of that declaration. */
function lineOf(source: string, needle: string | null): number | null {
  const metaAt = source.search(/export\s+const\s+meta\b/);
  const start = metaAt < 0 ? 0 : metaAt;
  const at = needle === null ? -1 : source.indexOf(needle, start);
  const pos = at >= 0 ? at : metaAt;
  return pos < 0 ? null : source.slice(0, pos).split("\n").length;
}

function metaError(file: string, source: string, path: string, reason: string, value?: unknown): RuleLoadError {
  const needle = typeof value === "string" ? JSON.stringify(value).slice(1, -1) : null;
  return new RuleLoadError(file, lineOf(source, needle), null, `${path}: ${reason}`);
}

/** Checks meta against the catalog: written tags exist, set tags are not a driver's, no trigger feeds itself. */
function checkTags(file: string, source: string, meta: RuleMeta, catalog: Catalog): void {
  meta.writes.forEach((tag, i) => {
    if (!catalog.has(tag)) throw metaError(file, source, `meta.writes[${i}]`, `no tag '${tag}' in variables.yml`, tag);
  });
  meta.sets.forEach((tag, i) => {
    const known = catalog.get(tag);
    // every tag of variables.yml has its one producer (a driver, or the derived consumer): not a rule too
    if (known) throw metaError(file, source, `meta.sets[${i}]`, `tag '${tag}' is produced by '${tagSource(known)}' (variables.yml): a rule may only set tags outside the catalog`, tag);
    if (meta.triggers.includes(tag)) throw metaError(file, source, `meta.sets[${i}]`, `tag '${tag}' is also a trigger: the rule would run on its own output`, tag);
  });
}

/**
 * Loads and validates a rule; returns its spec and its loaded sandbox, made by `make` (the rules worker's
 * in the gateway; this thread's by default, e.g. for `edgectl check`). Throws RuleLoadError.
 */
export async function loadRule(file: string, source: string, catalog: Catalog, stateJson = "{}", make: SandboxFactory = localSandbox): Promise<{ spec: RuleSpec; sandbox: RuleSandbox }> {
  const name = ruleNameOf(file);
  if (!RULE_NAME.test(name)) throw new RuleLoadError(file, null, null, `the file name must be <name>.js with a name of letters, digits, _ and - (at most 64)`);
  // first load with defaults only to read meta; the limits it declares apply from the second load on
  const probe = make(file, source, DEFAULT_LIMITS);
  let exported: RuleExports;
  try {
    exported = await probe.load(stateJson);
  } finally {
    probe.close();
  }
  if (exported.meta === undefined) throw new RuleLoadError(file, null, null, "the rule exports no `meta` object (export const meta = { triggers: [...], writes: [...] })");
  let meta: RuleMeta;
  try {
    meta = parseWithSchema(RuleMeta, exported.meta, file, "meta");
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const value = e.path.split(/[.[\]]/).filter(Boolean).reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], { meta: exported.meta });
    throw metaError(file, source, e.path, e.detail, value);
  }
  if (meta.triggers.length === 0 && meta.everyMs === undefined) throw metaError(file, source, "meta", "a rule needs triggers (tags) or everyMs (a timer)");
  if (meta.triggers.length > 0 && !exported.onMessage) throw metaError(file, source, "meta.triggers", "the rule has triggers but exports no function onMessage(msg)");
  if (meta.everyMs !== undefined && !exported.onTimer) throw metaError(file, source, "meta.everyMs", "the rule has a timer but exports no function onTimer(nowMs)");
  checkTags(file, source, meta, catalog);
  const limits: SandboxLimits = {
    ...DEFAULT_LIMITS,
    ...(meta.timeLimitMs !== undefined ? { timeLimitMs: meta.timeLimitMs } : {}),
    ...(meta.memoryMiB !== undefined ? { memoryBytes: meta.memoryMiB << 20 } : {}),
  };
  const sandbox = make(file, source, limits, { writes: meta.writes, sets: meta.sets });
  await sandbox.load(stateJson);
  return { spec: { name, file, source, meta, limits }, sandbox };
}

/** Every rule file of `configDir`/rules that would be refused (for `edgectl check`); loads nothing for good. */
export async function checkRuleFiles(configDir: string, catalog: Catalog): Promise<{ rules: number; problems: RuleLoadError[] }> {
  const dir = join(configDir, "rules");
  if (!existsSync(dir)) return { rules: 0, problems: [] };
  const files = readdirSync(dir).filter((f) => f.endsWith(".js")).sort();
  const problems: RuleLoadError[] = [];
  for (const f of files) {
    try {
      (await loadRule(`rules/${f}`, readFileSync(join(dir, f), "utf8"), catalog)).sandbox.close();
    } catch (e) {
      if (!(e instanceof RuleLoadError)) throw e;
      problems.push(e);
    }
  }
  return { rules: files.length, problems };
}
