#!/usr/bin/env node
// Brings everything the project needs onto a machine that has only Node.js and npm, then runs Bun.
//   node .ci/bootstrap.mjs run <file> [args]   install, then `bun <file> [args]`   (npm start, bench)
//   node .ci/bootstrap.mjs test [args]         install (with the Debian servers the tests use), then
//                                              `bun test`, ending with the line "N passed, N failed"
//   node .ci/bootstrap.mjs x <bin> [args]      install, then `bun x <bin> [args]`
// `npm start`, `npm test` and `npm run bench` also build the operations console (console/build.mjs) when its sources changed.
// Bun comes from the npm registry at the version pinned in package.json (engines.bun), into .bun/.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const bunVersion = pkg.engines.bun;
const bunBin = join(root, ".bun", "node_modules", ".bin", "bun");

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`bootstrap: '${cmd} ${args.join(" ")}' failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
  return r;
}

function ensureBun() {
  if (existsSync(bunBin)) {
    const v = spawnSync(bunBin, ["--version"], { encoding: "utf8" });
    if (v.status === 0 && v.stdout.trim() === bunVersion) return;
  }
  console.error(`bootstrap: installing bun ${bunVersion} from the npm registry into .bun/`);
  sh("npm", ["install", "--prefix", join(root, ".bun"), "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error", `bun@${bunVersion}`]);
}

function ensureDeps() {
  sh(bunBin, ["install", "--frozen-lockfile", "--silent"]);
}

/** The Debian packages the tests run for real (brokers, servers); installed when missing, as root. */
function ensureDebian() {
  const wanted = pkg.edge?.debianPackages ?? [];
  // "install ok installed" only: a removed package keeps a status entry (deinstall ... config-files)
  const isInstalled = (p) => spawnSync("dpkg-query", ["-W", "-f=${Status}", p], { encoding: "utf8" }).stdout?.trim() === "install ok installed";
  const missing = wanted.filter((p) => !isInstalled(p));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    console.error(`bootstrap: the tests need these Debian packages: ${missing.join(" ")}\n  install them with: sudo apt-get install -y ${missing.join(" ")}`);
    process.exit(1);
  }
  console.error(`bootstrap: installing Debian packages: ${missing.join(" ")}`);
  sh("apt-get", ["update", "-qq"]);
  sh("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

/** The console the gateway serves at /: rebuilt only when its sources changed (console/build.mjs). */
async function ensureConsole() {
  const { ensureConsoleBuilt } = await import("../console/build.mjs");
  try {
    ensureConsoleBuilt({ bun: bunBin });
  } catch (e) {
    console.error(`bootstrap: ${e.message}`);
    process.exit(1);
  }
}

function runBun(args) {
  // EDGE_STOP_WITH_PARENT: the gateway stops by itself if this process dies without forwarding (SIGKILL)
  const child = spawn(bunBin, args, { stdio: "inherit", cwd: root, env: { ...process.env, EDGE_STOP_WITH_PARENT: String(process.pid) } });
  forwardStops(child);
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

/**
 * Stop signals reach Bun however `npm start` is stopped. A signal to this process is passed on (the
 * gateway counts copies of one Ctrl-C arriving together once: server/signals.ts). `npm` passes SIGTERM
 * only to the `sh -c` it runs, which dies without passing it on: so when our parent is gone we send
 * SIGTERM ourselves, instead of leaving an orphaned gateway holding every port.
 */
function forwardStops(child) {
  let forwarded = false;
  const forward = (sig) => {
    forwarded = true;
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => forward(sig));
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    // after a Ctrl-C the shell dies too: the gateway has its signal already, another would count twice
    if (!forwarded) forward("SIGTERM");
  }, 250);
  watch.unref();
}

function runTests(args) {
  // Bun's runner prints "N pass" / "N fail" on separate lines; CI reads "N passed, N failed".
  const child = spawn(bunBin, ["test", "--timeout", "120000", ...args], { stdio: ["ignore", "pipe", "pipe"], cwd: root });
  let tail = "";
  const keep = (chunk) => {
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", (c) => (process.stdout.write(c), keep(c)));
  child.stderr.on("data", (c) => (process.stderr.write(c), keep(c)));
  child.on("exit", (code, signal) => {
    const pass = Number(/^\s*(\d+) pass\s*$/m.exec(tail)?.[1] ?? 0);
    let fail = Number(/^\s*(\d+) fail\s*$/m.exec(tail)?.[1] ?? 0);
    if (code !== 0 && fail === 0) fail = 1; // the runner itself died: count it, never report green
    console.log(`\n${pass} passed, ${fail} failed`);
    process.exit(code ?? (signal ? 1 : 0));
  });
}

const [cmd, ...rest] = process.argv.slice(2);
ensureBun();
ensureDeps();
if (cmd === "run") {
  // the gateway serves the console, and the console benchmark loads it; edgectl and token need none
  if (["server/main.ts", "test/bench/run.ts"].includes(rest[0])) await ensureConsole();
  runBun(rest);
} else if (cmd === "x") runBun(["x", ...rest]);
else if (cmd === "test") {
  ensureDebian();
  await ensureConsole();
  runTests(rest);
} else {
  console.error("usage: node .ci/bootstrap.mjs run <file> | test [args] | x <bin> [args]");
  process.exit(2);
}
