// One Modbus TCP connection per endpoint URL, shared by every driver on that URL through the endpoint
// pool. It wraps modbus-serial's client (measured on loopback against the same server, 125-register
// reads: modbus-serial 15.1k req/s sequential, 20.7k req/s with 8 requests in flight; jsmodbus 17.3k
// and 19.1k) because modbus-serial takes the unit id per request, which a shared connection needs,
// and matches concurrent requests by transaction id. A connection that broke reopens itself on the
// next request, so that drivers sharing it keep their lease; errors come back as named classes.
// After a write got no answer the connection is abandoned (its queued request must not be answered
// late) and the link counts as unproven until a request has made a full round trip on a new one.
// With TLS settings (tls+tcp://, Modbus/TCP Security) the connection is a TLS socket opened by
// storage/tls.ts (certificate files read at every attempt) and handed to modbus-serial as its socket.
import ModbusRTU from "modbus-serial";
import type { TlsFiles } from "../../schemas/tls.ts";
import { deadline, TIMED_OUT } from "../../storage/time.ts";
import { tlsConnect } from "../../storage/tls.ts";
import type { Area } from "./plan.ts";

export class ModbusTimeoutError extends Error {
  override name = "ModbusTimeoutError";
}

export class ModbusConnectionError extends Error {
  override name = "ModbusConnectionError";
}

/** The connection could not be opened: no request of this call reached the device. */
export class ModbusConnectError extends ModbusConnectionError {
  override name = "ModbusConnectError";
}

const EXCEPTION_TEXT: Record<number, string> = {
  1: "illegal function",
  2: "illegal data address",
  3: "illegal data value",
  4: "server device failure",
  5: "acknowledge",
  6: "server device busy",
  8: "memory parity error",
  10: "gateway path unavailable",
  11: "gateway target device failed to respond",
};

/** The device answered with a Modbus exception response. */
export class ModbusExceptionError extends Error {
  override name = "ModbusExceptionError";
  constructor(readonly code: number) {
    super(`Modbus exception ${code} (${EXCEPTION_TEXT[code] ?? "unknown"})`);
  }
}

/** What the driver needs of a Modbus link: TCP (ModbusConnection) or an RTU line (rtu.ts). */
export interface ModbusLink {
  /**
   * True when requests wait in the link and go out one at a time (an RTU line): a poll loop may then
   * queue its next read before handling the current answer. Modbus/TCP sends at once (a device may not
   * take several requests in flight), so it says nothing.
   */
  readonly queuesRequests?: boolean;
  read(unitId: number, area: Area, start: number, count: number): Promise<number[] | boolean[]>;
  readRegisters(unitId: number, area: "holding" | "input", start: number, count: number): Promise<number[]>;
  readBits(unitId: number, area: "coil" | "discrete", start: number, count: number): Promise<boolean[]>;
  writeRegisters(unitId: number, address: number, values: number[]): Promise<void>;
  writeCoils(unitId: number, address: number, values: boolean[]): Promise<void>;
  /** false after a write to the unit got no answer, until the link has answered again (see abandon) */
  isProven(unitId: number): boolean;
  /** called after a write got no answer, so that nothing queued behind it is sent or answered late */
  abandon(unitId: number): void;
  close(): void;
}

type Callback<T> = (err: (Error & { modbusCode?: number; errno?: string }) | null, res: T) => void;

export class ModbusConnection implements ModbusLink {
  private client: ModbusRTU | null = null;
  private opening: Promise<ModbusRTU> | null = null;
  /** false from an abandoned write until a request has been answered on the connection opened since */
  private proven = true;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly timeoutMs: number,
    /** set: Modbus/TCP Security (TLS) */
    readonly tls?: TlsFiles,
  ) {}

  get isOpen(): boolean {
    return this.client?.isOpen === true;
  }

  /**
   * true unless a write got no answer and no request has been answered since on a new connection. A
   * hung device's kernel still accepts a new TCP connection, so being connected again proves nothing.
   * Connection-wide: behind a TCP gateway every unit shares the abandoned connection.
   */
  isProven(_unitId?: number): boolean {
    return this.proven;
  }

  /**
   * Drops the connection after an unanswered write, so that nothing more is queued behind it (a
   * request already in the device's receive buffer may still be executed: nobody can take it back).
   */
  abandon(_unitId?: number): void {
    this.proven = false;
    this.discard();
  }

  /** Opens the socket unless open; concurrent callers share one attempt. */
  open(): Promise<ModbusRTU> {
    if (this.client?.isOpen) return Promise.resolve(this.client);
    this.opening ??= (async () => {
      this.discard();
      const c = new ModbusRTU();
      c.setTimeout(this.timeoutMs);
      // a connect that hangs (SYN dropped by a firewall) would otherwise wait for the OS timeout
      let failure: string | null = null;
      try {
        // the handshake has its own deadline and tells which certificate failed and why
        const socket = this.tls ? await tlsConnect({ host: this.host, port: this.port, timeoutMs: this.timeoutMs, tls: this.tls }) : undefined;
        if ((await deadline(c.connectTCP(this.host, { port: this.port, ...(socket ? { socket } : {}) }), this.timeoutMs)) === TIMED_OUT) failure = `timed out after ${this.timeoutMs} ms`;
      } catch (e) {
        failure = e instanceof Error ? e.message : String(e);
      }
      if (failure !== null) {
        c.close(() => undefined);
        throw new ModbusConnectError(`connect to ${this.host}:${this.port}: ${failure}`);
      }
      // errors are answered per request; an unhandled 'error' event must not reach the process
      c.on("error", () => undefined);
      this.client = c;
      return c;
    })().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private discard(): void {
    const c = this.client;
    this.client = null;
    if (c) {
      try {
        c.close(() => undefined);
      } catch {
        // already closed
      }
    }
  }

  close(): void {
    this.discard();
  }

  private async call<T>(run: (c: ModbusRTU, cb: Callback<T>) => void): Promise<T> {
    const c = await this.open();
    return await new Promise<T>((resolve, reject) => {
      try {
        run(c, (err, res) => {
          if (!err) {
            // an answer on the current connection proves the link (one on an abandoned one does not)
            if (c === this.client) this.proven = true;
            return resolve(res);
          }
          if (typeof err.modbusCode === "number") {
            if (c === this.client) this.proven = true; // an exception response is an answer too
            return reject(new ModbusExceptionError(err.modbusCode));
          }
          if (err.errno === "ETIMEDOUT" || /timed out/i.test(err.message)) return reject(new ModbusTimeoutError(`no answer within ${this.timeoutMs} ms`));
          if (!c.isOpen && this.client === c) this.discard();
          reject(new ModbusConnectionError(err.message));
        });
      } catch (e) {
        if (this.client === c) this.discard();
        reject(new ModbusConnectionError((e as Error).message));
      }
    });
  }

  /** Registers of a holding/input area. */
  readRegisters(unitId: number, area: "holding" | "input", start: number, count: number): Promise<number[]> {
    return this.call<{ data: number[] }>((c, cb) => (area === "holding" ? c.writeFC3 : c.writeFC4).call(c, unitId, start, count, cb as never)).then((r) => r.data);
  }

  /** Bits of a coil/discrete area. */
  readBits(unitId: number, area: "coil" | "discrete", start: number, count: number): Promise<boolean[]> {
    return this.call<{ data: boolean[] }>((c, cb) => (area === "coil" ? c.writeFC1 : c.writeFC2).call(c, unitId, start, count, cb as never)).then((r) => r.data);
  }

  read(unitId: number, area: Area, start: number, count: number): Promise<number[] | boolean[]> {
    return area === "coil" || area === "discrete" ? this.readBits(unitId, area, start, count) : this.readRegisters(unitId, area, start, count);
  }

  /** FC6 for one register, FC16 for more. */
  async writeRegisters(unitId: number, address: number, values: number[]): Promise<void> {
    if (values.length === 1) await this.call((c, cb) => c.writeFC6(unitId, address, values[0]!, cb as never));
    else await this.call((c, cb) => c.writeFC16(unitId, address, values, cb as never));
  }

  /** FC5 for one coil, FC15 for more. */
  async writeCoils(unitId: number, address: number, values: boolean[]): Promise<void> {
    if (values.length === 1) await this.call((c, cb) => c.writeFC5(unitId, address, values[0]!, cb as never));
    else await this.call((c, cb) => c.writeFC15(unitId, address, values, cb as never));
  }
}
