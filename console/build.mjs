#!/usr/bin/env node
// Builds the console into console/build/ when its sources changed since the last build: a digest of
// console/src and console/static, the config files and the pinned versions of its dependencies is kept in
// build/.source-hash, so `npm start` and `npm test` (through .ci/bootstrap.mjs) cost nothing when
// nothing changed. Plain JavaScript: it runs under Node (the bootstrap) and under Bun (test harness).
//   node console/build.mjs [--bun <path to bun>] [--force]
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const consoleDir = dirname(fileURLToPath(import.meta.url));
const root = join(consoleDir, "..");
export const BUILD_DIR = join(consoleDir, "build");
const HASH_FILE = join(BUILD_DIR, ".source-hash");
/** Files outside src/ that change the build (the shared quality table is compiled into the bundle). */
const INPUTS = ["vite.config.ts", "package.json", "../schemas/quality.ts", "../schemas/status-codes.ts", "../schemas/acks.ts", "../schemas/registers.ts", "../schemas/register-views.ts", "../schemas/command.ts"];
const DEPS = ["svelte", "@sveltejs/kit", "@sveltejs/vite-plugin-svelte", "@sveltejs/adapter-static", "vite", "uplot"];

function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** The digest of everything the build reads. */
export function sourceHash() {
  const h = createHash("sha256");
  for (const f of [...filesUnder(join(consoleDir, "src")), ...filesUnder(join(consoleDir, "static")), ...INPUTS.map((i) => join(consoleDir, i))]) {
    h.update(relative(consoleDir, f)).update("\0").update(readFileSync(f)).update("\0");
  }
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const versions = { ...pkg.dependencies, ...pkg.devDependencies };
  h.update(JSON.stringify(DEPS.map((d) => [d, versions[d]])));
  return h.digest("hex");
}

/** Whether build/ holds a build of the current sources. */
export function isBuildCurrent() {
  return existsSync(join(BUILD_DIR, "200.html")) && existsSync(HASH_FILE) && readFileSync(HASH_FILE, "utf8").trim() === sourceHash();
}

/**
 * Builds when the sources changed; returns "current" or "built". Throws with the build's output when
 * it fails. Vite runs under Bun (`bun --bun vite build`): under Node 20 prerendering fails.
 */
export function ensureConsoleBuilt({ bun = join(root, ".bun", "node_modules", ".bin", "bun"), force = false, log = (s) => process.stderr.write(s + "\n") } = {}) {
  if (!force && isBuildCurrent()) return "current";
  const hash = sourceHash();
  log("console: building the operations console (sources changed) ...");
  const started = Date.now();
  // resolved against the caller's directory: the build runs in console/, where `.bun/...` is not found
  const r = spawnSync(resolve(bun), ["--bun", "vite", "build", "--logLevel", "warn"], { cwd: consoleDir, encoding: "utf8" });
  // a bun that could not start has no exit code, only `error` (ENOENT, EACCES): say which and where
  if (r.error) throw new Error(`console build failed: cannot run ${resolve(bun)}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`console build failed (exit ${r.status ?? r.signal}):\n${(r.stdout ?? "") + (r.stderr ?? "")}`.trim());
  writeFileSync(HASH_FILE, hash + "\n");
  log(`console: built into console/build/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return "built";
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf("--bun");
  try {
    ensureConsoleBuilt({ ...(i > 0 ? { bun: process.argv[i + 1] } : {}), force: process.argv.includes("--force") });
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
