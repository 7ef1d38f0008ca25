// Real serial lines for tests: a socat pty pair (two linked pseudo-terminals, what a null-modem cable
// between two ports would be), Debian's pymodbus RTU slave on one end, and a TCP bridge to a pty for
// RTU over TCP (what a serial device server does), and a slave written here that injects faults.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { crc16 } from "../../drivers/modbus/rtu-frame.ts";
import { openSerialLink, type ByteLink } from "../../drivers/modbus/serial-port.ts";
import { freePort, waitFor } from "./index.ts";
import { closeLeftovers, registerProcess } from "./registry.ts";

export interface PtyPair {
  /** the gateway's end */
  a: string;
  /** the device's end */
  b: string;
  /** ends socat: both ptys close (what unplugging the adapter looks like to the gateway) */
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT to socat: nothing moves between the ends (a hung adapter), the buffers fill */
  pause(): void;
  resume(): void;
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
  await closeLeftovers();
  const p = Bun.spawn(["socat", "-d", "-d", `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdout: "ignore", stderr: "ignore" });
  registerProcess(`socat's pty pair ${a}`, p);
  await waitFor(() => existsSync(a) && existsSync(b), `socat's ptys ${a} and ${b}`, 5000, 10);
  return { a, b, stop: () => stopProcess(p), pause: () => p.kill("SIGSTOP"), resume: () => p.kill("SIGCONT") };
}

/** Debian's pymodbus (3.0) serving `units` on the device `path` (see pymodbus-rtu-server.py for the values). */
export async function pymodbusRtuServer(path: string, units: number[]): Promise<{ stop(): Promise<void>; process: Subprocess }> {
  // /usr/bin/python3: Debian's, which has python3-pymodbus (a pyenv python on PATH may not)
  await closeLeftovers();
  const p = Bun.spawn(["/usr/bin/python3", join(import.meta.dir, "pymodbus-rtu-server.py"), path, units.join(",")], { stdout: "pipe", stderr: "inherit" });
  registerProcess(`pymodbus on ${path}`, p);
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
  registerProcess(`socat tcp ${port} to ${path}`, p);
  // wait for the listening socket without connecting: with `fork`, a probe connection gets its own child that
  // opens the pty too and can swallow the first answers meant for the real client (a flaky test seen in CI)
  await waitFor(() => isListening(port), `socat listening on ${port}`, 5000);
  return { port, stop: () => stopProcess(p) };
}

/** A TCP socket in LISTEN state on 127.0.0.1:port, read from /proc/net/tcp (Linux). */
function isListening(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .some((line) => {
      const cols = line.trim().split(/\s+/);
      return cols[1] === `0100007F:${hexPort}` && cols[3] === "0A";
    });
}

/**
 * How a unit of the test slave answers: normally, not at all, with a corrupted CRC, or followed by a stray
 * 0xFF in the same write (what an RS-485 transceiver turning the line around can put after a frame), or
 * with a read's byte count set to 250 (a frame that announces bytes that never come).
 */
export type UnitBehaviour = "ok" | "silent" | "corrupt-crc" | "trailing-byte" | "wrong-count";

/**
 * A Modbus RTU slave written for the tests, on the device end of a pty pair: holding registers only
 * (FC3 reads, FC6/FC16 writes), unit u's register i holding u*100+i until written, and a behaviour
 * per unit that a test switches at will to inject faults.
 */
export class RtuTestSlave {
  readonly registers = new Map<number, number[]>();
  readonly behaviour = new Map<number, UnitBehaviour>();
  /** requests seen per unit, answered or not */
  readonly seen = new Map<number, number>();
  /** every request in arrival order: unit, function, performance.now() */
  readonly requests: { unit: number; fc: number; at: number }[] = [];
  private buf = Buffer.alloc(0);

  private constructor(private readonly link: ByteLink) {
    link.onData = (b) => this.receive(b);
  }

  static async open(path: string, units: number[]): Promise<RtuTestSlave> {
    const s = new RtuTestSlave(await openSerialLink(path, { baud: 19200, parity: "even", dataBits: 8, stopBits: 1 }));
    for (const u of units) {
      s.registers.set(u, Array.from({ length: 100 }, (_, i) => u * 100 + i));
      s.behaviour.set(u, "ok");
    }
    return s;
  }

  close(): void {
    this.link.close();
  }

  private receive(b: Buffer): void {
    this.buf = Buffer.concat([this.buf, b]);
    for (;;) {
      const n = this.requestLength();
      if (n === undefined || this.buf.length < n) return;
      const frame = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      const crc = crc16(frame, n - 2);
      if (frame[n - 2] !== (crc & 0xff) || frame[n - 1] !== crc >>> 8) {
        this.buf = Buffer.alloc(0); // out of step: drop everything, as a slave does after a bad frame
        return;
      }
      this.answer(frame);
    }
  }

  private requestLength(): number | undefined {
    if (this.buf.length < 2) return undefined;
    if (this.buf[1] === 16 || this.buf[1] === 15) return this.buf.length < 7 ? undefined : 9 + this.buf[6]!;
    return 8;
  }

  private answer(f: Buffer): void {
    const unit = f[0]!;
    this.seen.set(unit, (this.seen.get(unit) ?? 0) + 1);
    this.requests.push({ unit, fc: f[1]!, at: performance.now() });
    const regs = this.registers.get(unit);
    const how = this.behaviour.get(unit);
    if (!regs || how === "silent") return;
    const fc = f[1]!;
    const address = f.readUInt16BE(2);
    let body: number[];
    if (fc === 3) {
      const count = f.readUInt16BE(4);
      if (address + count > regs.length) body = [unit, fc | 0x80, 2];
      else body = [unit, fc, how === "wrong-count" ? 250 : count * 2, ...regs.slice(address, address + count).flatMap((w) => [w >> 8, w & 0xff])];
    } else if (fc === 6) {
      regs[address] = f.readUInt16BE(4);
      body = [...f.subarray(0, 6)];
    } else if (fc === 16) {
      const count = f.readUInt16BE(4);
      for (let i = 0; i < count; i++) regs[address + i] = f.readUInt16BE(7 + 2 * i);
      body = [...f.subarray(0, 6)];
    } else body = [unit, fc | 0x80, 1];
    const out = Buffer.alloc(body.length + 2);
    out.set(body);
    const crc = crc16(out, body.length);
    out.writeUInt16LE(how === "corrupt-crc" ? crc ^ 0x5a5a : crc, body.length);
    this.link.write(how === "trailing-byte" ? Buffer.concat([out, Buffer.from([0xff])]) : out);
  }
}
