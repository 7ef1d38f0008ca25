// A Modbus TCP device in its own process (the demo server, server/demo/modbus-server.ts), so that a
// test can kill it (SIGKILL: a dead PLC) or freeze it (SIGSTOP: a hung PLC whose kernel still accepts
// connections and queues requests) and restart it on the same port. Every write the device executes
// is reported on stdout and counted by the parent, so a test can assert what reached the device.
// Run as a script, it is the device: `bun test/helpers/modbus-device.ts <port>`.
import type { Subprocess } from "bun";
import { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { waitFor } from "./index.ts";
import { closeLeftovers, registerProcess } from "./registry.ts";

/** A write the device executed: where, and the first value written. */
export interface DeviceWrite {
  area: "coil" | "holding";
  address: number;
  value: number;
}

/** Fixed start values, so a test knows what Good readings look like: holding i = 1000 + i, input i = 2000 + i, bits alternate. */
function fill(server: ModbusTcpServer): void {
  for (let i = 0; i < 200; i++) {
    server.holding[i] = 1000 + i;
    server.input[i] = 2000 + i;
    server.coils[i] = i % 2;
    server.discrete[i] = (i + 1) % 2;
  }
}

async function runDevice(port: number): Promise<void> {
  const server = new ModbusTcpServer({ port, size: 1000 });
  fill(server);
  server.onWrite = (w) => {
    const value = w.area === "coil" ? server.coils[w.address]! : server.holding[w.address]!;
    process.stdout.write(`write ${w.area} ${w.address} ${value}\n`);
  };
  await server.start();
  process.stdout.write(`listening ${server.port}\n`);
}

/** The device as a child process of the test. */
export class ModbusDevice {
  readonly writes: DeviceWrite[] = [];
  private proc: Subprocess<"ignore", "pipe", "inherit"> | null = null;
  private listening = false;

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    await closeLeftovers();
    this.listening = false;
    const proc = Bun.spawn([process.execPath, import.meta.path, String(this.port)], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
    registerProcess(`the Modbus device on port ${this.port}`, proc);
    this.proc = proc;
    void this.readLines(proc);
    await waitFor(() => this.listening || proc.exitCode !== null, `the Modbus device on port ${this.port}`, 10_000);
    if (!this.listening) throw new Error(`the Modbus device on port ${this.port} exited with ${proc.exitCode}`);
  }

  private async readLines(proc: Subprocess<"ignore", "pipe", "inherit">): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stdout as unknown as AsyncIterable<Uint8Array>) {
      rest += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const [word, a, b, c] = rest.slice(0, nl).split(" ");
        rest = rest.slice(nl + 1);
        if (word === "listening") this.listening = true;
        else if (word === "write") this.writes.push({ area: a as DeviceWrite["area"], address: Number(b), value: Number(c) });
      }
    }
  }

  /** SIGKILL (a dead device), SIGSTOP (hung) or SIGCONT (resumed). */
  signal(sig: "SIGKILL" | "SIGSTOP" | "SIGCONT"): void {
    this.proc?.kill(sig);
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode) return;
    proc.kill("SIGCONT"); // a stopped process must be running to die promptly under some kernels
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

if (import.meta.main) await runDevice(Number(process.argv[2] ?? 0));
