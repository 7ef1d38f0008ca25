// Byte links an RTU line runs over: a serial device (a tty or a pty) and a TCP socket to a serial
// device server. Under Bun the `serialport` package crashes the process on open (uv_poll_init is not
// implemented, measured with 13.0.0), so a serial device is put in raw mode with its line settings by
// `stty`, written with fs.writeSync on a non-blocking file descriptor (an RTU request is a few bytes;
// a full output buffer is a failed link, never a blocked process) and read by a `cat` child process whose stdout pipe Bun reads event-driven.
// Not a tty.ReadStream, which reads well alone (measured) but each one seems to hold a thread of the
// pool Bun shares with native add-ons: with two open in one process DuckDB's commits stopped
// completing, with three a line's reads timed out (Bun 1.4.5). fs.createReadStream fails with EAGAIN
// and Bun.file(fd).stream() with ESPIPE on a tty.
import { closeSync, constants, existsSync, openSync, realpathSync, writeSync } from "node:fs";
import { connect, type Socket } from "node:net";
import type { Subprocess } from "bun";
import type { LineSettings } from "../endpoint.ts";

/** A stream of bytes both ways; `onClose` fires once when the link is gone (unplugged, peer closed). */
export interface ByteLink {
  readonly name: string;
  write(bytes: Uint8Array): void;
  close(): void;
  onData: (bytes: Buffer) => void;
  onClose: (why: Error) => void;
}

export class SerialOpenError extends Error {
  override name = "SerialOpenError";
}

/** `stty` arguments for raw transparent I/O: no echo, no line editing, no flow control. */
export function sttyRawArgs(path: string): string[] {
  return ["-F", path, "raw", "-echo", "clocal", "cread", "-crtscts", "-ixon", "-ixoff"];
}

/** `stty` arguments for the line's settings (baud, data bits, stop bits, parity). */
export function sttyLineArgs(path: string, s: LineSettings): string[] {
  const parity = s.parity === "none" ? ["-parenb"] : ["parenb", s.parity === "odd" ? "parodd" : "-parodd"];
  return ["-F", path, String(s.baud), `cs${s.dataBits}`, s.stopBits === 2 ? "cstopb" : "-cstopb", ...parity];
}

async function stty(args: string[]): Promise<string | null> {
  const p = Bun.spawn(["stty", ...args], { stdout: "ignore", stderr: "pipe" });
  if ((await p.exited) === 0) return null;
  return (await new Response(p.stderr).text()).trim() || `exit ${p.exitCode}`;
}

/** A pseudo-terminal has no baud rate and refuses parity (measured: `stty parenb` fails on /dev/pts). */
function isPty(path: string): boolean {
  try {
    return realpathSync(path).startsWith("/dev/pts/");
  } catch {
    return false;
  }
}

abstract class BaseLink implements ByteLink {
  onData: (bytes: Buffer) => void = () => undefined;
  onClose: (why: Error) => void = () => undefined;
  private closed = false;
  constructor(readonly name: string) {}
  abstract write(bytes: Uint8Array): void;
  protected abstract release(): void;

  /** Ends the link once, telling the owner why (a close it asked for is not news to it). */
  protected gone(why: Error, tell: boolean): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.release();
    } catch {
      // already released by the OS
    }
    if (tell) this.onClose(why);
  }

  close(): void {
    this.gone(new Error("closed"), false);
  }
}

class SerialLink extends BaseLink {
  constructor(
    name: string,
    private readonly fd: number,
    private readonly reader: Subprocess<"ignore", "pipe", "pipe">,
  ) {
    super(name);
    void this.pipe();
  }

  /** Bytes from `cat` until it ends: EIO when a pty's other end closes or a USB adapter is unplugged. */
  private async pipe(): Promise<void> {
    const r = this.reader.stdout.getReader();
    try {
      for (let c = await r.read(); !c.done; c = await r.read()) this.onData(Buffer.from(c.value));
    } catch {
      // the pipe broke: same as its end
    }
    const why = (await new Response(this.reader.stderr).text().catch(() => "")).trim();
    this.gone(new Error(`${this.name}: ${why || "the device closed"}`), true);
  }

  write(bytes: Uint8Array): void {
    let written: number;
    try {
      written = writeSync(this.fd, bytes);
    } catch (e) {
      const full = (e as NodeJS.ErrnoException).code === "EAGAIN";
      const why = full ? new SerialOpenError(`${this.name}: the device takes no more bytes (output buffer full: a hung adapter, or nothing reading the line)`) : (e as Error);
      this.gone(why, true);
      throw why;
    }
    if (written < bytes.length) {
      const why = new SerialOpenError(`${this.name}: the device took ${written} of ${bytes.length} bytes (output buffer full)`);
      this.gone(why, true);
      throw why;
    }
  }

  protected release(): void {
    this.reader.kill();
    closeSync(this.fd);
  }
}

/** util-linux's setpriv (Essential in Debian, so also in the container image), when there is one. */
const setpriv = Bun.which("setpriv");

/**
 * The reader of a device: `cat`, killed by the kernel when this process dies (PR_SET_PDEATHSIG through
 * `setpriv`, which then execs cat under the same pid, so `kill()` still ends it). A SIGKILLed gateway
 * cannot end its children; its `cat` stayed blocked in read() on the device and took the answer to the
 * next run's first request (measured: the first read of a unit after every SIGKILL restart timed out).
 * Without setpriv a plain `cat`: the same as before, correct while the gateway ends normally.
 */
export function readerArgv(path: string): string[] {
  return setpriv ? [setpriv, "--pdeathsig", "KILL", "--", "cat", path] : ["cat", path];
}

/** Opens a serial device with its line settings; bytes that were waiting in it are dropped by the line. */
export async function openSerialLink(path: string, s: LineSettings): Promise<ByteLink> {
  // said plainly: stty's own words for it name the path three times over
  if (!existsSync(path)) throw new SerialOpenError(`${path}: no such device (a USB adapter unplugged, or a wrong path)`);
  const raw = await stty(sttyRawArgs(path));
  if (raw !== null) throw new SerialOpenError(`${path}: stty raw failed: ${raw}`);
  const line = await stty(sttyLineArgs(path, s));
  if (line !== null && !isPty(path)) throw new SerialOpenError(`${path}: cannot set ${s.baud} baud, ${s.dataBits} data bits, parity ${s.parity}, ${s.stopBits} stop bits: ${line}`);
  let fd: number;
  try {
    // non-blocking: a device that stops taking bytes (its end not read, a hung adapter) fills the tty's
    // buffer (~16-24 KB measured on a pty), and a blocking write then froze the whole process
    fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (e) {
    throw new SerialOpenError(`${path}: ${(e as Error).message}`);
  }
  try {
    return new SerialLink(path, fd, Bun.spawn(readerArgv(path), { stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  } catch (e) {
    closeSync(fd);
    throw new SerialOpenError(`${path}: ${(e as Error).message}`);
  }
}

class TcpLink extends BaseLink {
  constructor(
    name: string,
    private readonly socket: Socket,
  ) {
    super(name);
    socket.on("data", (b: Buffer) => this.onData(b));
    socket.on("error", (e) => this.gone(e, true));
    socket.on("close", () => this.gone(new Error(`${name}: connection closed by the device server`), true));
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  protected release(): void {
    this.socket.removeAllListeners("data");
    this.socket.on("error", () => undefined);
    this.socket.destroy();
  }
}

/** A TCP connection to a serial device server that passes RTU frames through unchanged. */
export async function openTcpLink(host: string, port: number, timeoutMs: number): Promise<ByteLink> {
  const name = `${host}:${port}`;
  return await new Promise<ByteLink>((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new SerialOpenError(`connect to ${name}: ${e.message}`));
    };
    socket.once("error", fail);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", fail);
      resolve(new TcpLink(name, socket));
    });
  });
}
