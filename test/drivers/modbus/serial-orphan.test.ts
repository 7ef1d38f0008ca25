// A process that had a serial line open and was SIGKILLed (a gateway killed, or crashed hard) must not
// leave its reader behind. The line is read by a `cat` child; SIGKILL gives the process no chance to end
// it, and the orphaned `cat` stayed blocked in read() on the device until bytes came: it took the answer to
// the next process's first request (found from outside: after every SIGKILL restart the first read of a
// unit on the line timed out, its tags Bad_Timeout until its hold ran out). On a quiet line it held the
// device open for ever.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { openSerialLink, type ByteLink } from "../../../drivers/modbus/serial-port.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { ptyPair, type PtyPair } from "../../helpers/serial.ts";

const settings = { baud: 19200, parity: "even", dataBits: 8, stopBits: 1 } as const;

/** pids of processes with `path` among their arguments (a reader of the device, whoever its parent is) */
function readersOf(path: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // ended meanwhile
    }
    if (args.slice(1).includes(path) && args.some((a) => a === "cat" || a.endsWith("/cat"))) pids.push(Number(name));
  }
  return pids;
}

let dir: ReturnType<typeof tempDir>;
let pair: PtyPair;
const links: ByteLink[] = [];

beforeEach(async () => {
  dir = tempDir();
  pair = await ptyPair(dir.path);
});

afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  for (const pid of readersOf(pair.a)) process.kill(pid, "SIGKILL");
  await pair.stop();
  dir.cleanup();
});

describe("serial link of a SIGKILLed process", () => {
  it("leaves no reader on the device, and the next process's link gets the first bytes", async () => {
    const script = join(dir.path, "holder.ts");
    writeFileSync(
      script,
      `import { openSerialLink } from ${JSON.stringify(join(import.meta.dir, "../../../drivers/modbus/serial-port.ts"))};\n` +
        `await openSerialLink(${JSON.stringify(pair.a)}, ${JSON.stringify(settings)});\n` +
        `console.log("open");\nsetInterval(() => undefined, 1000);\n`,
    );
    const holder = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
    const reader = holder.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("open");
    // the holder's reader is seen (so that none seen below means it ended); its exec may lag the spawn under load
    await waitFor(() => readersOf(pair.a).length === 1, `the holder's reader of ${pair.a}`, 5_000);

    holder.kill("SIGKILL");
    await holder.exited;
    // its reader ends with it (before: it stayed, blocked in read(), until bytes came)
    await waitFor(() => readersOf(pair.a).length === 0, `no process reading ${pair.a} after its owner was SIGKILLed`, 2_000);

    const link = await openSerialLink(pair.a, settings);
    links.push(link);
    const got: number[] = [];
    link.onData = (b) => got.push(...b);
    const device = openSync(pair.b, "w");
    try {
      writeSync(device, Buffer.from([1, 3, 2, 0, 100]));
    } finally {
      closeSync(device);
    }
    await waitFor(() => got.length >= 5, "the first bytes from the device at the new link", 2_000);
    expect(got).toEqual([1, 3, 2, 0, 100]);
  });
});
