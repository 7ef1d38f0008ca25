// Real serial lines for tests: a socat pty pair (two linked pseudo-terminals, what a null-modem cable
// between two ports would be), Debian's pymodbus RTU slave on one end, and a TCP bridge to a pty for
// RTU over TCP (what a serial device server does).
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort, waitFor } from "./index.ts";

export interface PtyPair {
  /** the gateway's end */
  a: string;
  /** the device's end */
  b: string;
  /** ends socat: both ptys close (what unplugging the adapter looks like to the gateway) */
  stop(): Promise<void>;
}

async function stopProcess(p: Subprocess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill("SIGTERM");
  await p.exited;
}

/** A linked pty pair at `<dir>/<name>-a` and `<dir>/<name>-b`, ready when both links exist. */
export async function ptyPair(dir: string, name = "line"): Promise<PtyPair> {
  const a = join(dir, `${name}-a`);
  const b = join(dir, `${name}-b`);
  const p = Bun.spawn(["socat", "-d", "-d", `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdout: "ignore", stderr: "ignore" });
  await waitFor(() => existsSync(a) && existsSync(b), `socat's ptys ${a} and ${b}`, 5000, 10);
  return { a, b, stop: () => stopProcess(p) };
}

/** Debian's pymodbus (3.0) serving `units` on the device `path` (see pymodbus-rtu-server.py for the values). */
export async function pymodbusRtuServer(path: string, units: number[]): Promise<{ stop(): Promise<void>; process: Subprocess }> {
  // /usr/bin/python3: Debian's, which has python3-pymodbus (a pyenv python on PATH may not)
  const p = Bun.spawn(["/usr/bin/python3", join(import.meta.dir, "pymodbus-rtu-server.py"), path, units.join(",")], { stdout: "pipe", stderr: "inherit" });
  const reader = p.stdout.getReader();
  const first = await reader.read(); // "serving ..." once the modules loaded
  if (first.done) throw new Error(`pymodbus RTU server on ${path} exited (${await p.exited})`);
  reader.releaseLock();
  return { process: p, stop: () => stopProcess(p) };
}

/** `socat TCP-LISTEN:<port>,fork,reuseaddr <pty>`: RTU frames over TCP to a serial device, as a device server. */
export async function tcpToPty(path: string): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const p = Bun.spawn(["socat", `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, `${path},raw,echo=0`], { stdout: "ignore", stderr: "ignore" });
  await waitFor(
    () =>
      Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
        (s) => (s.end(), true),
        () => false,
      ),
    `socat listening on ${port}`,
    5000,
  );
  return { port, stop: () => stopProcess(p) };
}
