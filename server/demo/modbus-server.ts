// A small Modbus TCP server (slave) over in-memory register banks, for the demo plant and for tests.
// Own code rather than jsmodbus's server because jsmodbus answers a read past the end of its buffer
// with a short response instead of exception 2 (illegal data address), ignores the unit id and
// does not count connections; a real PLC does all three, and the driver's tests depend on them.
// Functions 1, 2, 3, 4, 5, 6, 15, 16; anything else gets exception 1.
import { createServer, type Server, type Socket } from "node:net";

export type Area = "coil" | "discrete" | "holding" | "input";

export interface ModbusTcpServerOptions {
  host?: string;
  port?: number;
  /** size of every area, in registers or bits (addresses 0..size-1 exist; beyond: exception 2) */
  size?: number;
  /** unit ids answered; others get exception 0x0B (gateway target failed to respond). Default: all. */
  unitIds?: readonly number[];
}

export interface WriteInfo {
  unitId: number;
  area: "coil" | "holding";
  address: number;
  count: number;
}

/** Exception codes of the Modbus application protocol. */
export const ModbusExceptionCode = { IllegalFunction: 1, IllegalDataAddress: 2, IllegalDataValue: 3, GatewayTargetFailed: 0x0b } as const;

export class ModbusTcpServer {
  readonly coils: Uint8Array;
  readonly discrete: Uint8Array;
  readonly holding: Uint16Array;
  readonly input: Uint16Array;
  /** requests answered since start (for tests and benchmarks) */
  requests = 0;
  /** called after a master's write has changed the banks */
  onWrite: ((w: WriteInfo) => void) | null = null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly units: ReadonlySet<number> | null;
  private boundPort = 0;

  constructor(private readonly opts: ModbusTcpServerOptions = {}) {
    const size = opts.size ?? 10_000;
    this.coils = new Uint8Array(size);
    this.discrete = new Uint8Array(size);
    this.holding = new Uint16Array(size);
    this.input = new Uint16Array(size);
    this.units = opts.unitIds ? new Set(opts.unitIds) : null;
  }

  get port(): number {
    return this.boundPort;
  }

  /** open client connections right now */
  get connections(): number {
    return this.sockets.size;
  }

  async start(): Promise<void> {
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port ?? 0, this.opts.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", () => undefined);
    const addr = server.address();
    this.boundPort = typeof addr === "object" && addr ? addr.port : 0;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  /** Drops every open connection (as a PLC reboot would), keeping the listener. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      // MBAP header: transaction id (2), protocol id (2, always 0), length (2, unit id + PDU), unit id (1)
      while (buf.length >= 7) {
        const len = buf.readUInt16BE(4);
        if (buf.readUInt16BE(2) !== 0 || len < 2 || len > 254) {
          // not Modbus TCP: a real device closes the connection rather than guessing the framing
          socket.destroy();
          return;
        }
        if (buf.length < 6 + len) break;
        const frame = buf.subarray(0, 6 + len);
        buf = buf.subarray(6 + len);
        const pdu = this.handle(frame[6]!, frame.subarray(7));
        if (!pdu) continue;
        const out = Buffer.allocUnsafe(7 + pdu.length);
        frame.copy(out, 0, 0, 4);
        out.writeUInt16BE(pdu.length + 1, 4);
        out[6] = frame[6]!;
        pdu.copy(out, 7);
        this.requests++;
        socket.write(out);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => this.sockets.delete(socket));
  }

  private handle(unitId: number, pdu: Buffer): Buffer | null {
    const fc = pdu[0]!;
    const exception = (code: number) => Buffer.from([fc | 0x80, code]);
    if (this.units && !this.units.has(unitId)) return exception(ModbusExceptionCode.GatewayTargetFailed);
    if (pdu.length < 5) return exception(ModbusExceptionCode.IllegalDataValue);
    const address = pdu.readUInt16BE(1);
    const second = pdu.readUInt16BE(3);
    switch (fc) {
      case 1:
      case 2: {
        const bits = fc === 1 ? this.coils : this.discrete;
        if (second < 1 || second > 2000) return exception(ModbusExceptionCode.IllegalDataValue);
        if (address + second > bits.length) return exception(ModbusExceptionCode.IllegalDataAddress);
        const bytes = Math.ceil(second / 8);
        const out = Buffer.alloc(2 + bytes);
        out[0] = fc;
        out[1] = bytes;
        for (let i = 0; i < second; i++) if (bits[address + i]) out[2 + (i >> 3)]! |= 1 << (i & 7);
        return out;
      }
      case 3:
      case 4: {
        const regs = fc === 3 ? this.holding : this.input;
        if (second < 1 || second > 125) return exception(ModbusExceptionCode.IllegalDataValue);
        if (address + second > regs.length) return exception(ModbusExceptionCode.IllegalDataAddress);
        const out = Buffer.allocUnsafe(2 + second * 2);
        out[0] = fc;
        out[1] = second * 2;
        for (let i = 0; i < second; i++) out.writeUInt16BE(regs[address + i]!, 2 + i * 2);
        return out;
      }
      case 5: {
        if (second !== 0xff00 && second !== 0) return exception(ModbusExceptionCode.IllegalDataValue);
        if (address >= this.coils.length) return exception(ModbusExceptionCode.IllegalDataAddress);
        this.coils[address] = second ? 1 : 0;
        this.onWrite?.({ unitId, area: "coil", address, count: 1 });
        return Buffer.from(pdu.subarray(0, 5));
      }
      case 6: {
        if (address >= this.holding.length) return exception(ModbusExceptionCode.IllegalDataAddress);
        this.holding[address] = second;
        this.onWrite?.({ unitId, area: "holding", address, count: 1 });
        return Buffer.from(pdu.subarray(0, 5));
      }
      case 15:
      case 16: {
        const byteCount = pdu[5] ?? 0;
        const isCoils = fc === 15;
        const expected = isCoils ? Math.ceil(second / 8) : second * 2;
        if (second < 1 || second > (isCoils ? 1968 : 123) || byteCount !== expected || pdu.length < 6 + byteCount) {
          return exception(ModbusExceptionCode.IllegalDataValue);
        }
        if (address + second > (isCoils ? this.coils.length : this.holding.length)) return exception(ModbusExceptionCode.IllegalDataAddress);
        for (let i = 0; i < second; i++) {
          if (isCoils) this.coils[address + i] = (pdu[6 + (i >> 3)]! >> (i & 7)) & 1;
          else this.holding[address + i] = pdu.readUInt16BE(6 + i * 2);
        }
        this.onWrite?.({ unitId, area: isCoils ? "coil" : "holding", address, count: second });
        return Buffer.from(pdu.subarray(0, 5));
      }
      default:
        return exception(ModbusExceptionCode.IllegalFunction);
    }
  }
}
