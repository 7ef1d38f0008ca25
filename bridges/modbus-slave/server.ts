// The Modbus TCP slave: a listener on Bun's TCP sockets with our own MBAP framing (protocol.ts), a
// process image fed from the event log (map.ts), and writes turned into commands whose ack decides the
// answer. A connection that breaks the framing is closed; a request that is wrong gets an exception
// response; nothing a client sends can throw out of a socket handler. The image follows the log through a
// supervised consumer (storage/consumer.ts): a read error is retried, never the end of the updates.
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "pino";
import { checkWrite, type WriteRefusal } from "../../schemas/command.ts";
import type { Catalog, Origin, Value } from "../../schemas/index.ts";
import type { EventLog } from "../../storage/index.ts";
import { consume, type ConsumerStatus, type LogConsumer } from "../../storage/consumer.ts";
import { compileAllowlist, normalizeIp } from "./allowlist.ts";
import type { ModbusSlaveConfig, ResolvedEntry } from "./config.ts";
import { RegisterImage } from "./map.ts";
import {
  bitsResponse,
  exceptionFrame,
  ExceptionCode,
  frame,
  ModbusException,
  nextFrame,
  parseRequest,
  wordsResponse,
  writeResponse,
  type Request,
} from "./protocol.ts";
import { writeException, type WriteAck } from "./writes.ts";

/** What the slave needs of the command bus (storage/commands.ts CommandBus fits it). */
export interface CommandExecutor {
  execute(
    c: { tag: string; value: Value; origin: Origin; actor: string; tenant: string },
    timeoutMs: number,
  ): Promise<{ ack: WriteAck }>;
}

export interface SlaveOptions {
  config: ModbusSlaveConfig;
  entries: ResolvedEntry[];
  log: EventLog;
  catalog: Catalog;
  commands: CommandExecutor;
  logger?: Pick<Logger, "info" | "warn" | "debug" | "error">;
  /**
   * The current register map, asked again on every catalog 'change' (config reload); throws ConfigError
   * when it is invalid, and then the old map keeps serving. Absent: the map is fixed at construction.
   */
  currentMap?: () => ResolvedEntry[];
}

/** The slave's part of the readiness document (server/context.ts ComponentStatus has this shape). */
export interface SlaveStatus {
  state: "ok" | "degraded" | "down";
  reasons: string[];
  port: number;
  connections: number;
  refusedConnections: number;
  /** map entries whose tag is Bad or was never read (served per their onBad) */
  badEntries: number;
  /** the log tail feeding the register image */
  consumer: ConsumerStatus | null;
  /** requests answered, and exception responses by code (01 illegal function, 02 illegal address ...) */
  requests: number;
  exceptions: Record<number, number>;
  writes: number;
  writesDenied: number;
  [detail: string]: unknown;
}

export interface SlaveStats {
  connections: number;
  refused: number;
  requests: number;
  exceptions: Record<number, number>;
  badFrames: number;
  writes: number;
  /** write requests refused because the client is not in `writeAllowlist` (exception 01) */
  writesDenied: number;
}

interface Conn {
  ip: string;
  /** bytes received, not yet framed */
  pending: Uint8Array | null;
  /** a write is waiting for its ack: later frames wait, so answers keep the request order */
  busy: boolean;
  /** answers the kernel did not take yet (flushed on drain) */
  out: Uint8Array[];
  outBytes: number;
  closed: boolean;
  /** the client matches `writeAllowlist` (checked once, at connect) */
  mayWrite: boolean;
  /** its first refused write was logged (one line per connection, not per request) */
  deniedLogged: boolean;
}

/** Pipelined bytes kept for a connection whose write is in progress; beyond this the client is flooding. */
const MAX_PENDING_BYTES = 64 * 260;
/** Unsent answers kept for a client that does not read; beyond this it is dropped. */
const MAX_OUT_BYTES = 1 << 20;

const refusalCode: Record<WriteRefusal, number> = {
  unknown_tag: ExceptionCode.IllegalDataAddress,
  not_writable: ExceptionCode.IllegalDataAddress,
  type_mismatch: ExceptionCode.IllegalDataValue,
  out_of_range: ExceptionCode.IllegalDataValue,
};

export class ModbusSlave {
  /** replaced whole by remap(); requests and the log tail use whichever image is current */
  private current: RegisterImage;
  readonly stats: SlaveStats = { connections: 0, refused: 0, requests: 0, exceptions: {}, badFrames: 0, writes: 0, writesDenied: 0 };
  private listener: TCPSocketListener<Conn> | null = null;
  private tail: LogConsumer | null = null;
  private readonly allow: ((ip: string) => boolean) | null;
  /** null: no `writeAllowlist`, so no client may write (safe default) */
  private readonly allowWrite: ((ip: string) => boolean) | null;

  constructor(private readonly opts: SlaveOptions) {
    this.current = new RegisterImage(opts.entries, opts.config.unmapped);
    this.allow = opts.config.allowlist ? compileAllowlist(opts.config.allowlist) : null;
    this.allowWrite = opts.config.writeAllowlist ? compileAllowlist(opts.config.writeAllowlist) : null;
  }

  get image(): RegisterImage {
    return this.current;
  }

  /**
   * Serves a new register map from now on, without touching connections. The new image is filled from
   * the log's latest committed values and swapped in within one tick, so the tail's next page lands in it
   * and no value is missed (frames the tail has not delivered yet are re-applied in log order, ending at
   * the same values); a write already waiting for its ack answers from the new image.
   */
  remap(entries: ResolvedEntry[]): void {
    const image = new RegisterImage(entries, this.opts.config.unmapped);
    for (const [tag, f] of this.opts.log.latest()) image.update(tag, f.value, f.quality);
    this.current = image;
  }

  /** A config reload replaced the catalog: the map may name other tags or types now. Never throws (an emitter's listener). */
  private readonly onCatalogChange = (): void => {
    try {
      const entries = this.opts.currentMap!(); // listened to only when currentMap is set
      this.remap(entries);
      this.opts.logger?.info({ entries: entries.length }, "modbus slave: register map reloaded");
    } catch (err) {
      this.opts.logger?.error({ error: (err as Error).message }, "modbus slave: new register map refused; the old map keeps serving");
    }
  };

  get port(): number {
    return this.listener?.port ?? 0;
  }

  /** Loads the latest value of every mapped tag, starts following the log, then listens. */
  async start(): Promise<void> {
    const { log } = this.opts;
    // latest() and the consumer's start (from the head) in one synchronous step: the tail starts
    // exactly after the snapshot. Not durable: on a restart the image is rebuilt from latest() again.
    for (const [tag, f] of log.latest()) this.current.update(tag, f.value, f.quality);
    this.tail = consume(log, {
      name: "modbus-slave",
      from: "head",
      kinds: ["data"],
      handler: (page) => {
        const image = this.current; // remap() swaps the image between pages, never within one
        for (const f of page) if (f.kind === "data") image.update(f.tag, f.value, f.quality);
      },
      // retried with the consumer's backoff (200 ms doubling to 10 s)
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    if (this.opts.currentMap) this.opts.catalog.on("change", this.onCatalogChange);
    const { host, port, idleTimeoutMs } = this.opts.config;
    const idleS = Math.max(1, Math.ceil(idleTimeoutMs / 1000));
    this.listener = Bun.listen<Conn>({
      hostname: host,
      port,
      socket: {
        open: (s) => this.onOpen(s, idleS),
        data: (s, data) => {
          s.timeout(idleS);
          this.onData(s, data);
        },
        drain: (s) => this.flush(s),
        close: (s) => this.onClose(s),
        error: (s, err) => {
          this.opts.logger?.debug({ ip: s.data?.ip, err }, "modbus slave: socket error");
          this.onClose(s);
        },
        timeout: (s) => {
          this.opts.logger?.debug({ ip: s.data?.ip }, "modbus slave: idle connection closed");
          this.close(s);
        },
      },
    });
    this.opts.logger?.info({ port: this.port, entries: this.opts.entries.length }, "modbus slave listening");
  }

  async stop(): Promise<void> {
    this.opts.catalog.off("change", this.onCatalogChange);
    this.listener?.stop(true);
    this.listener = null;
    await this.tail?.stop();
  }

  /** Down when not listening or its tail stopped; degraded while the tail retries (served values may be stale). */
  status(): SlaveStatus {
    const consumer = this.tail?.status() ?? null;
    const reasons: string[] = [];
    let state: SlaveStatus["state"] = "ok";
    if (!this.listener) {
      state = "down";
      reasons.push("not listening");
    } else if (!consumer || consumer.state === "stopped") {
      state = "down";
      reasons.push("its log tail is stopped: served values no longer change");
    } else if (consumer.state === "retrying") {
      state = "degraded";
      reasons.push(`its log tail is retrying after an error (${consumer.lastError}): served values may be stale`);
    }
    const { connections, refused, requests, exceptions, writes, writesDenied } = this.stats;
    return { state, reasons, port: this.port, connections, refusedConnections: refused, requests, exceptions: { ...exceptions }, writes, writesDenied, badEntries: this.current.badEntries(), consumer };
  }

  // ---- connections ----------------------------------------------------------------------------
  private onOpen(s: Socket<Conn>, idleS: number): void {
    const ip = normalizeIp(s.remoteAddress);
    const mayWrite = this.allowWrite?.(ip) ?? false;
    s.data = { ip, pending: null, busy: false, out: [], outBytes: 0, closed: false, mayWrite, deniedLogged: false };
    if ((this.allow && !this.allow(ip)) || this.stats.connections >= this.opts.config.maxConnections) {
      this.stats.refused++;
      this.opts.logger?.warn({ ip }, "modbus slave: connection refused (allowlist or connection limit)");
      s.data.closed = true;
      s.terminate();
      return;
    }
    this.stats.connections++;
    s.timeout(idleS);
  }

  private onClose(s: Socket<Conn>): void {
    const c = s.data;
    if (!c || c.closed) return;
    c.closed = true;
    c.pending = null;
    c.out = [];
    this.stats.connections--;
  }

  private close(s: Socket<Conn>): void {
    this.onClose(s);
    s.terminate();
  }

  private onData(s: Socket<Conn>, data: Uint8Array): void {
    const c = s.data;
    if (!c || c.closed) return;
    if (c.pending) {
      const joined = new Uint8Array(c.pending.length + data.length);
      joined.set(c.pending);
      joined.set(data, c.pending.length);
      c.pending = joined;
    } else {
      // Bun may reuse the buffer it hands to `data`: keep a copy of what outlives this call
      c.pending = data;
    }
    if (c.pending.length > MAX_PENDING_BYTES) {
      this.opts.logger?.warn({ ip: c.ip }, "modbus slave: client floods requests, connection closed");
      this.stats.badFrames++;
      this.close(s);
      return;
    }
    this.pump(s);
  }

  /** Answers every complete frame in order; stops at an incomplete one or while a write waits for its ack. */
  private pump(s: Socket<Conn>): void {
    const c = s.data;
    while (!c.closed && !c.busy && c.pending) {
      const f = nextFrame(c.pending);
      if (f.kind === "incomplete") {
        c.pending = c.pending.length ? c.pending.slice() : null;
        return;
      }
      if (f.kind === "bad") {
        this.stats.badFrames++;
        this.opts.logger?.debug({ ip: c.ip, reason: f.reason, head: Buffer.from(c.pending.subarray(0, 12)).toString("hex") }, "modbus slave: bad frame, connection closed");
        // FIN, not RST: answers already written to earlier frames of the same burst still arrive;
        // nothing more is read, and a peer that does not close its side is cut after 2 s
        this.onClose(s);
        s.end();
        s.timeout(2);
        return;
      }
      c.pending = f.size < c.pending.length ? c.pending.subarray(f.size) : null;
      this.stats.requests++;
      let answer: Uint8Array | Promise<Uint8Array>;
      try {
        answer = this.handle(c, f.tid, f.unit, f.pdu);
      } catch (err) {
        answer = this.failure(f.tid, f.unit, f.pdu[0] ?? 0, err);
      }
      if (answer instanceof Uint8Array) {
        this.send(s, answer);
        continue;
      }
      // a write waits for its ack: later frames stay pending (as a copy, the socket's buffer is reused)
      c.busy = true;
      if (c.pending) c.pending = c.pending.slice();
      const fc = f.pdu[0] ?? 0;
      answer
        .catch((err) => this.failure(f.tid, f.unit, fc, err))
        .then((bytes) => {
          c.busy = false;
          if (c.closed) return;
          this.send(s, bytes);
          this.pump(s);
        });
      return;
    }
  }

  private failure(tid: number, unit: number, fc: number, err: unknown): Uint8Array {
    const code = err instanceof ModbusException ? err.code : ExceptionCode.DeviceFailure;
    if (!(err instanceof ModbusException)) this.opts.logger?.warn({ err }, "modbus slave: request failed");
    this.stats.exceptions[code] = (this.stats.exceptions[code] ?? 0) + 1;
    return exceptionFrame(tid, unit, fc, code);
  }

  private send(s: Socket<Conn>, bytes: Uint8Array): void {
    const c = s.data;
    if (c.closed) return;
    if (c.out.length) {
      c.out.push(bytes);
      c.outBytes += bytes.length;
    } else {
      const n = s.write(bytes);
      if (n < 0) return this.onClose(s);
      if (n < bytes.length) {
        c.out.push(bytes.subarray(n));
        c.outBytes += bytes.length - n;
      }
    }
    if (c.outBytes > MAX_OUT_BYTES) {
      this.opts.logger?.warn({ ip: c.ip }, "modbus slave: client does not read its answers, connection closed");
      this.close(s);
    }
  }

  private flush(s: Socket<Conn>): void {
    const c = s.data;
    while (c && !c.closed && c.out.length) {
      const head = c.out[0]!;
      const n = s.write(head);
      if (n < 0) return this.onClose(s);
      c.outBytes -= Math.max(0, n);
      if (n < head.length) {
        c.out[0] = head.subarray(n);
        return;
      }
      c.out.shift();
    }
  }

  // ---- requests -------------------------------------------------------------------------------
  private handle(c: Conn, tid: number, unit: number, pdu: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const req = parseRequest(pdu);
    if (!this.current.hasUnit(unit)) throw new ModbusException(ExceptionCode.GatewayPathUnavailable, `unit ${unit} not served`);
    switch (req.fc) {
      case 1:
      case 2:
        return frame(tid, unit, bitsResponse(req.fc, this.current.read(unit, req.fc === 1 ? "coil" : "discrete", req.address, req.quantity)));
      case 3:
      case 4:
        return frame(tid, unit, wordsResponse(req.fc, this.current.read(unit, req.fc === 3 ? "holding" : "input", req.address, req.quantity)));
      case 5:
      case 15:
      case 6:
      case 16:
        return this.write(c, unit, req).then(() => frame(tid, unit, writeResponse(pdu)));
      case 23:
        // the read part answers after the write's ack, so it shows the state the write was applied to
        return this.write(c, unit, { fc: 16, address: req.write.address, words: req.write.words }).then(() =>
          frame(tid, unit, wordsResponse(23, this.current.read(unit, "holding", req.read.address, req.read.quantity))),
        );
    }
  }

  /**
   * A Modbus master carries no credentials, so a write is only taken from an address of `writeAllowlist`.
   * Exception 01 (illegal function): for this client, writing is not a function the slave offers; 02/03
   * would send an operator looking for a wrong address or value.
   */
  private denyWrite(c: Conn): never {
    this.stats.writesDenied++;
    if (!c.deniedLogged) {
      c.deniedLogged = true;
      const why = this.allowWrite ? "the client is not in modbusSlave.writeAllowlist" : "modbusSlave.writeAllowlist is not set";
      this.opts.logger?.warn({ ip: c.ip }, `modbus slave: write refused with exception 01 (${why}); further refusals on this connection are not logged`);
    }
    throw new ModbusException(ExceptionCode.IllegalFunction, `writes from ${c.ip} are not allowed (modbusSlave.writeAllowlist)`);
  }

  /** checkWrite for every value first (nothing executes if one is refused), then the commands, then their acks. */
  private async write(c: Conn, unit: number, req: Request & { fc: 5 | 6 | 15 | 16 }): Promise<void> {
    if (!c.mayWrite) this.denyWrite(c);
    const isBits = req.fc === 5 || req.fc === 15;
    const values = isBits ? (req as { bits: boolean[] }).bits.map((b) => (b ? 1 : 0)) : (req as { words: Uint16Array }).words;
    const plans = this.current.planWrite(unit, isBits ? "coil" : "holding", req.address, values);
    const checked = plans.map(({ entry, value }) => {
      const tag = this.opts.catalog.get(entry.tag);
      // a 64-bit register pair written to a tag that is not 64-bit: compare as a number
      if (typeof value === "bigint" && tag && tag.type !== "int64" && tag.type !== "uint64") value = Number(value);
      const res = checkWrite(tag, value);
      if (!res.ok) throw new ModbusException(refusalCode[res.code], `${entry.tag}: ${res.message}`);
      return { tag: tag!, value: res.value }; // checkWrite refuses an undefined tag, so tag is set here
    });
    this.stats.writes += checked.length;
    const results = await Promise.all(
      checked.map(({ tag, value }) =>
        this.opts.commands.execute({ tag: tag.tag, value, origin: "modbus", actor: `modbus:${c.ip}`, tenant: tag.tenant }, this.opts.config.writeTimeoutMs),
      ),
    );
    const refused = writeException(results.map((r) => r.ack));
    if (refused) throw refused;
  }
}
