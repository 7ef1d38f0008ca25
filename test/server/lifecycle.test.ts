// The stop, end to end through `npm start`, as a terminal and a service manager do it: Ctrl-C (SIGINT
// to the whole process group), SIGTERM to the npm process alone, and SIGKILL to the bootstrap. Afterwards no process
// is left, no port listens, and the log opens without replaying a WAL (the stop checkpointed it).
import { afterAll, afterEach, describe, expect, it } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { EventLog } from "../../storage/index.ts";
import { freePort, tempDir, waitFor, writeConfig } from "../helpers/index.ts";

const root = join(import.meta.dir, "..", "..");
const demoConfig = join(root, "server", "demo", "config");
const dirs: { cleanup(): void }[] = [];
/** process groups of the npm trees started: a test that failed before its clean stop leaves none running */
const groups: number[] = [];
afterEach(() => {
  for (const pgid of groups.splice(0)) if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
});
afterAll(() => dirs.forEach((d) => d.cleanup()));

interface Started {
  npm: ChildProcess;
  ports: number[];
  dataDir: string;
  output(): string;
}

/** `npm start -- --config <dir>` on the demo config (demo PLC, OPC UA, Modbus slave) with free ports, in its own process group. */
async function npmStart(): Promise<Started> {
  const dir = tempDir("edge-lifecycle-");
  dirs.push(dir);
  const [http, opcua, slave, plc] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dataDir = join(dir.path, "data");
  const files: Record<string, string> = {};
  for (const f of ["drivers.yml", "endpoints.yml", "variables.yml"]) files[f] = readFileSync(join(demoConfig, f), "utf8");
  files["gateway.yml"] = [
    "gatewayId: lifecycle",
    `dataDir: ${dataDir}`,
    "watchConfig: false",
    `http: { host: 127.0.0.1, port: ${http} }`,
    `opcua: { enabled: true, port: ${opcua}, allowAnonymous: true }`,
    `modbusSlave: { enabled: true, port: ${slave}, map: [] }`,
    `demo: { enabled: true, port: ${plc} }`,
  ].join("\n");
  const cfg = writeConfig(join(dir.path, "config"), files);
  // detached: its own process group (setsid), as a shell gives a foreground job
  const npm = spawn("npm", ["start", "--", "--config", cfg], {
    cwd: root,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, EDGE_DEMO_PLC_PORT: String(plc), EDGE_READY_FD: "stdout", EDGE_LOG_LEVEL: "info" },
  });
  if (npm.pid) groups.push(npm.pid);
  let out = "";
  npm.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  npm.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  await waitFor(() => out.includes('{"ready":true'), "the gateway's ready line", 60_000, 50).catch((e) => {
    throw new Error(`${(e as Error).message}\n${out.slice(-3000)}`);
  });
  // frames committed since the start: there is something in the WAL to fold
  const health = async () => (await (await fetch(`http://127.0.0.1:${http}/healthz`)).json()) as { log: { head: number } };
  const first = (await health()).log.head;
  await waitFor(async () => (await health()).log.head > first + 20, "frames committed", 20_000);
  return { npm, ports: [http, opcua, slave, plc], dataDir, output: () => out };
}

/** True while any process of group `pgid` exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

/** The tree is gone, every port closed, the log whole and checkpointed. */
async function expectCleanStop(s: Started): Promise<void> {
  const pgid = s.npm.pid!;
  try {
    await waitFor(() => !groupAlive(pgid), "every process of the npm start tree to exit", 15_000, 50);
  } finally {
    if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL"); // never leave a tree behind a failed test
  }
  const out = s.output();
  expect(out).toContain('"msg":"stopped"');
  expect(out).not.toContain("forced exit");
  for (const port of s.ports) expect({ port, listening: await listening(port) }).toEqual({ port, listening: false });
  const wal = join(s.dataDir, "log.duckdb.wal");
  expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
  const log = await EventLog.open({ path: join(s.dataDir, "log.duckdb"), tailFrames: 0 });
  try {
    const conn = await log.connect();
    const [count, min, max] = (await conn.runAndReadAll(`SELECT count(*), min("offset"), max("offset") FROM log`)).getRows()[0]!.map(Number);
    conn.closeSync();
    expect({ count, min, max }).toEqual({ count: log.head, min: 1, max: log.head });
  } finally {
    await log.close();
  }
}

describe("npm start lifecycle", () => {
  it("stops cleanly on Ctrl-C (SIGINT to the whole process group): no process, no port, no WAL to replay", async () => {
    const s = await npmStart();
    const gateway = Number(/"pid":(\d+)/.exec(s.output())?.[1]);
    process.kill(-s.npm.pid!, "SIGINT");
    // the copy forwarded by npm and bootstrap, arriving while the stop runs (the kernel merges copies
    // that arrive together, so without this the race the issue saw would depend on timing)
    await Bun.sleep(30);
    process.kill(gateway, "SIGINT");
    await expectCleanStop(s);
  }, 120_000);

  it("stops cleanly on SIGTERM to the npm process alone: the gateway is not orphaned", async () => {
    const s = await npmStart();
    s.npm.kill("SIGTERM");
    await expectCleanStop(s);
  }, 120_000);

  it("stops cleanly when the bootstrap between npm and the gateway is killed outright (SIGKILL)", async () => {
    const s = await npmStart();
    const gateway = Number(/"pid":(\d+)/.exec(s.output())?.[1]);
    // field 4 of /proc/<pid>/stat is the parent: the bootstrap (node .ci/bootstrap.mjs)
    const bootstrap = Number(readFileSync(`/proc/${gateway}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    expect(readFileSync(`/proc/${bootstrap}/cmdline`, "utf8")).toContain(".ci/bootstrap.mjs");
    process.kill(bootstrap, "SIGKILL");
    // npm and its shell end with the bootstrap; the gateway, re-parented, must not stay behind
    await waitFor(() => s.output().includes('"reason":"launcher exited"'), "the gateway to notice its launcher is gone", 10_000);
    await expectCleanStop(s);
  }, 120_000);
});
