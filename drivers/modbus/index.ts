// The Modbus driver (TCP, RTU on a serial line, RTU over TCP): polls a device's registers and coils in groups at their own rates (reads
// merged per unit/area, see plan.ts), turns them into frames, and writes setpoints (FC5/6/15/16)
// with a read-back. Device errors become Bad-quality frames for exactly the tags of the failed read;
// a connection failure makes every tag of the driver Bad (whatever was read last); a connection that
// stays down ends the read loop after `failuresBeforeRestart` attempts so that the manager restarts
// the driver with backoff (the connection itself reopens on the next request). A write that got no
// answer is acked outcome unknown and drops the connection; later writes are refused unsent until
// the new connection has answered a request (see drivers/README.md, "Writes under timeouts").
import type { AckCode, CmdFrame, DataFrame, Value, Variable } from "../../schemas/index.ts";
import { Quality } from "../../schemas/index.ts";
import { decodeRegisters, encodeRegisters, RegisterCodecError } from "../../schemas/registers.ts";
import { delay } from "../../storage/time.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink, type WriteResult } from "../contract.ts";
import { lineSettings, silenceOption, type Endpoint, type EndpointUrl, type Lease } from "../endpoint.ts";
import { DriverConfigError, DriverError } from "../errors.ts";
import { toEngineering, toRaw } from "../mapping.ts";
import { parseDriverConfig } from "../validate.ts";
import { ModbusConnectError, ModbusConnection, ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError, type ModbusLink } from "./client.ts";
import { RtuLine } from "./rtu.ts";
import { RtuFrameError, silenceMs } from "./rtu-frame.ts";
import { openSerialLink, openTcpLink } from "./serial-port.ts";
import { ModbusConfig } from "./config.ts";
import { isBitArea, planReads, slotOf, type ReadBlock, type Slot } from "./plan.ts";
import { rtuUnitProblem, validateModbusTags } from "./validate.ts";

export { rtuUnitProblem, validateModbusTags } from "./validate.ts";
export { ModbusConnectError, ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError } from "./client.ts";
export { RtuCrcError, RtuFrameError } from "./rtu-frame.ts";

/** Silence kept on an RTU-over-TCP line whose URL says none: that of a 19200 8E1 line (see linkOf). */
const DEVICE_SERVER_SILENCE_MS = silenceMs({ baud: 19200, parity: "even", dataBits: 8, stopBits: 1 });

/**
 * The RTU line an endpoint names, null for Modbus/TCP: its pool key (every driver and unit id on the line
 * shares one link), a name for messages, and the settings it opens with, as text (two endpoints naming one
 * line with other settings are a config mistake: server/config-check.ts).
 */
export function rtuLineOf(ep: EndpointUrl): { key: string; name: string; settings: string } | null {
  if (ep.scheme === "serial") {
    const s = lineSettings(ep);
    return { key: `serial://${ep.path}`, name: `the serial line ${ep.path}`, settings: `baud=${s.baud} parity=${s.parity} data=${s.dataBits} stop=${s.stopBits} silence=${+silenceMs(s).toFixed(3)} ms` };
  }
  if (ep.scheme === "rtu+tcp") {
    const at = `${ep.host}:${ep.port ?? 502}`;
    return { key: `rtu+tcp://${at}`, name: `the RTU line at ${at}`, settings: `silence=${+(silenceOption(ep) ?? DEVICE_SERVER_SILENCE_MS).toFixed(3)} ms` };
  }
  return null;
}

/**
 * The pool key and opener of an endpoint's link. An RTU line is keyed by the line itself (the device
 * path, or the device server's address), so that every driver and unit id on it shares one line and
 * its one-request-at-a-time schedule whatever the URL's options say (the first opener's settings win).
 */
export function linkOf(endpoint: Endpoint): { key: string; open: () => Promise<ModbusLink> } | string {
  const { host, timeoutMs } = endpoint;
  switch (endpoint.scheme) {
    case "tcp": {
      const port = endpoint.port ?? 502;
      return { key: endpoint.url, open: async () => new ModbusConnection(host, port, timeoutMs) };
    }
    case "tls+tcp": {
      // Modbus/TCP Security's registered port; the pool key includes the files, so a reload that changes them opens a new connection
      const port = endpoint.port ?? 802;
      const tls = endpoint.tls ?? { rejectUnauthorized: true };
      return { key: `${endpoint.url}#${JSON.stringify(tls)}`, open: async () => new ModbusConnection(host, port, timeoutMs, tls) };
    }
    case "serial": {
      const settings = lineSettings(endpoint);
      const path = endpoint.path;
      return { key: rtuLineOf(endpoint)!.key, open: async () => new RtuLine({ name: path, timeoutMs, silenceMs: silenceMs(settings), open: () => openSerialLink(path, settings) }) };
    }
    case "rtu+tcp": {
      const port = endpoint.port ?? 502;
      // a transparent device server forwards bytes as they come: keep the silence of a 19200 8E1 line
      // between frames, or the slave behind it may read two requests as one (measured with pymodbus
      // behind socat: without it, the second unit's requests were never answered)
      // (`silence=<ms>` in the URL for a device server that keeps the timing on its serial side)
      const silence = silenceOption(endpoint) ?? DEVICE_SERVER_SILENCE_MS;
      return { key: rtuLineOf(endpoint)!.key, open: async () => new RtuLine({ name: `${host}:${port}`, timeoutMs, silenceMs: silence, settleMs: 0, open: () => openTcpLink(host, port, timeoutMs) }) };
    }
    default:
      return `the modbus driver serves tcp://, tls+tcp://, serial:// and rtu+tcp://, not ${endpoint.scheme}://`;
  }
}

/** What a read gave: the registers or bits, or the error it failed with. */
type ReadOutcome = { data: number[] | boolean[] } | { error: unknown };

/** Quality of the tags of a read that failed with this exception code. */
export function exceptionQuality(code: number): number {
  switch (code) {
    case 1:
      return Quality.Bad_NotSupported; // the device does not implement this function
    case 2:
      return Quality.Bad_ConfigurationError; // no such address on the device: the map is wrong (not Bad_NodeIdUnknown, which a UA client reads as "no such node")
    case 3:
      return Quality.Bad_OutOfRange;
    case 4:
      return Quality.Bad_DeviceFailure;
    case 5:
    case 6:
      return Quality.Bad_ResourceUnavailable; // acknowledge/busy: try again later
    case 11:
      return Quality.Bad_Timeout; // gateway target did not respond
    default:
      return Quality.Bad_CommunicationError;
  }
}

export class ModbusDriver implements Driver {
  private id = "";
  private cfg!: ModbusConfig;
  private groups: { name: string; intervalMs: number; blocks: ReadBlock[] }[] = [];
  /** every read of every group: a connection failure makes all of them Bad */
  private allBlocks: ReadBlock[] = [];
  private lease: Lease<ModbusLink> | null = null;
  /** quality last sent per tag, so that a lasting failure is logged once, not at every poll */
  private readonly lastQuality = new Map<string, number>();
  private readonly lastExceptionEvent = new Map<string, number>();
  private connectionFailures = 0;
  private tags: readonly Variable[] = [];

  meta() {
    return { name: "modbus", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read", "write", "tcp", "rtu"] };
  }

  init(init: DriverInit): void {
    this.id = init.id;
    this.cfg = parseDriverConfig(init.id, ModbusConfig, init.config);
    const problem = validateModbusTags(init.id, init.tags)[0];
    if (problem) throw new DriverConfigError(init.id, `tag '${problem.tag}' ${problem.field}`, problem.message);
    this.tags = init.tags;
    const byGroup = new Map<string, Slot[]>();
    for (const t of init.tags) byGroup.set(t.group, [...(byGroup.get(t.group) ?? []), slotOf(t, this.cfg.unitId)]);
    this.groups = [...byGroup].map(([name, slots]) => ({ name, intervalMs: this.cfg.groups[name] ?? this.cfg.intervalMs, blocks: planReads(slots, this.cfg) }));
    this.allBlocks = this.groups.flatMap((g) => g.blocks);
  }

  /** Takes the shared connection of the endpoint URL; it opens lazily, so an offline device shows as Bad frames. */
  async connect(endpoint: Endpoint | undefined): Promise<void> {
    if (!endpoint) throw new DriverConfigError(this.id, "endpoint", "the modbus driver needs an endpoint (tcp://host:502, serial:///dev/ttyUSB0?baud=19200, rtu+tcp://host:4001)");
    const link = linkOf(endpoint);
    if (typeof link === "string") throw new DriverConfigError(this.id, "endpoint", link);
    const unit = endpoint.scheme === "serial" || endpoint.scheme === "rtu+tcp" ? rtuUnitProblem(this.cfg.unitId, this.tags) : null;
    if (unit) throw new DriverConfigError(this.id, unit.path, unit.message);
    this.lease = await endpoint.pool.acquire(link.key, link.open, (c) => c.close());
  }

  async readLoop(tx: FrameSink, signal: AbortSignal): Promise<void> {
    const conn = this.lease?.value;
    if (!conn) throw new DriverError(this.id, "readLoop before connect");
    this.connectionFailures = 0;
    const inner = new AbortController();
    const stop = () => inner.abort();
    signal.addEventListener("abort", stop, { once: true });
    let failure: unknown;
    await Promise.all(
      this.groups.map((g) =>
        this.pollGroup(conn, tx, inner.signal, g.blocks, g.intervalMs).catch((e) => {
          failure ??= e;
          inner.abort();
        }),
      ),
    );
    signal.removeEventListener("abort", stop);
    if (failure && !signal.aborted) throw failure;
  }

  private async pollGroup(conn: ModbusLink, tx: FrameSink, signal: AbortSignal, blocks: ReadBlock[], intervalMs: number): Promise<void> {
    let next = performance.now();
    // On a link that queues (RTU), the next read of the cycle (or of the next cycle, when polling as
    // fast as possible) is queued before this one's answer is handled: the line sends it while the
    // frames are decoded and logged. A read still queued when the loop ends settles unobserved.
    const ahead = conn.queuesRequests === true;
    let queued: { block: ReadBlock; read: Promise<ReadOutcome> } | null = null;
    while (!signal.aborted) {
      for (let i = 0; i < blocks.length; i++) {
        if (signal.aborted) return;
        const b = blocks[i]!;
        const read = queued?.block === b ? queued.read : this.startRead(conn, b);
        queued = null;
        const following = i + 1 < blocks.length ? blocks[i + 1] : intervalMs <= 0 ? blocks[0] : undefined;
        if (ahead && following) queued = { block: following, read: this.startRead(conn, following) };
        const frames = this.blockFrames(tx, b, await read);
        if (frames.length) await tx.send(frames);
      }
      tx.heartbeat();
      if (intervalMs <= 0) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      // fixed rate: a slow read shortens the wait instead of shifting every later poll
      next += intervalMs;
      const now = performance.now();
      if (next < now) next = now;
      await delay(next - now, signal);
    }
  }

  /** Sends a read; the promise never rejects (a failure is an outcome to turn into Bad frames). */
  private startRead(conn: ModbusLink, b: ReadBlock): Promise<ReadOutcome> {
    return conn.read(b.unitId, b.area, b.start, b.count).then(
      (data) => ({ data }),
      (error: unknown) => ({ error }),
    );
  }

  /** One read's outcome -> the frames of its tags (Good values, or Bad for all of them). */
  private blockFrames(tx: FrameSink, b: ReadBlock, outcome: ReadOutcome): DataFrame[] {
    if ("error" in outcome) return this.failBlock(tx, b, outcome.error);
    this.connectionFailures = 0;
    const data = outcome.data;
    const ts = Date.now() * 1000;
    const frames: DataFrame[] = new Array(b.slots.length);
    const bits = isBitArea(b.area);
    let n = 0;
    for (const s of b.slots) {
      let value: Value;
      let quality: number = Quality.Good;
      try {
        const raw = bits ? (data as boolean[])[s.address - b.start] === true : decodeRegisters(data as number[], s.address - b.start, s.layout);
        value = toEngineering(s.tag, raw);
      } catch (e) {
        // a short answer from the device: this tag is bad, the others of the read are fine
        if (!(e instanceof RegisterCodecError)) throw e;
        value = null;
        quality = Quality.Bad_DeviceFailure;
      }
      if (quality !== Quality.Good && this.lastQuality.get(s.tag.tag) === quality) continue;
      this.lastQuality.set(s.tag.tag, quality);
      frames[n++] = { kind: "data", tag: s.tag.tag, value, ts, quality, source: this.id };
    }
    frames.length = n;
    return frames;
  }

  private failBlock(tx: FrameSink, b: ReadBlock, e: unknown): DataFrame[] {
    let quality: number = Quality.Bad_CommunicationError;
    if (e instanceof ModbusTimeoutError) quality = Quality.Bad_Timeout;
    else if (e instanceof RtuFrameError) quality = Quality.Bad_CommunicationError; // a garbled answer: this read only
    else if (e instanceof ModbusExceptionError) {
      quality = exceptionQuality(e.code);
      this.exceptionEvent(tx, b, e.code);
    } else if (e instanceof ModbusConnectionError) {
      // the link is down: no value of this device is current, whichever group read it last
      const frames = this.badFrames(this.allBlocks, quality);
      if (++this.connectionFailures >= this.cfg.failuresBeforeRestart) {
        // send the Bad frames first, then let the manager restart us with backoff
        if (frames.length) void tx.send(frames);
        throw new DriverError(this.id, `connection failed ${this.connectionFailures} times: ${e.message}`, { cause: e });
      }
      return frames;
    } else throw e;
    return this.badFrames([b], quality);
  }

  /** Bad frames for the tags of `blocks` whose last frame had another quality. */
  private badFrames(blocks: readonly ReadBlock[], quality: number): DataFrame[] {
    const ts = Date.now() * 1000;
    const frames: DataFrame[] = [];
    for (const b of blocks) {
      for (const s of b.slots) {
        if (this.lastQuality.get(s.tag.tag) === quality) continue;
        this.lastQuality.set(s.tag.tag, quality);
        frames.push({ kind: "data", tag: s.tag.tag, value: null, ts, quality, source: this.id });
      }
    }
    return frames;
  }

  private exceptionEvent(tx: FrameSink, b: ReadBlock, code: number): void {
    const key = `${b.unitId}/${b.area}/${b.start}/${b.count}/${code}`;
    const now = performance.now();
    const last = this.lastExceptionEvent.get(key);
    if (last !== undefined && now - last < this.cfg.exceptionEventMs) return;
    this.lastExceptionEvent.set(key, now);
    tx.event("modbus.exception", { code, unitId: b.unitId, area: b.area, address: b.start, count: b.count });
  }

  /**
   * Writes a setpoint (engineering value -> raw -> registers) and reads it back when configured. A
   * write that got no answer (or lost its connection) after the request went out is outcome unknown:
   * the connection is dropped so the request does not stay queued, and until the new connection has
   * answered a request every write to the device is refused unsent (device_busy).
   */
  async write(cmd: CmdFrame, tag: Variable): Promise<WriteResult> {
    const conn = this.lease?.value;
    if (!conn) return { ok: false, code: "driver_not_running", error: "not connected" };
    const s = slotOf(tag, this.cfg.unitId);
    if (!conn.isProven(s.unitId)) {
      return { ok: false, code: "device_busy", error: "not written: an earlier write to this device got no answer; writes resume once the new connection has answered a request" };
    }
    if (s.area === "input" || s.area === "discrete") return { ok: false, code: "refused_not_writable", error: `${s.area} ${s.address} is read-only` };
    const progress = { sent: false };
    try {
      return await this.writeSlot(conn, s, tag, cmd.value, progress);
    } catch (e) {
      return this.writeFailure(conn, s.unitId, e, progress.sent);
    }
  }

  private async writeSlot(conn: ModbusLink, s: Slot, tag: Variable, value: Value, progress: { sent: boolean }): Promise<WriteResult> {
    if (s.area === "coil") {
      const on = value === true || value === 1 || value === "true";
      progress.sent = true;
      await conn.writeCoils(s.unitId, s.address, [on]);
      if (this.cfg.readBack) {
        const [back] = await conn.readBits(s.unitId, "coil", s.address, 1);
        if (back !== on) return { ok: false, code: "readback_mismatch", error: `read back coil ${s.address}: ${back}, expected ${on}` };
      }
      return { ok: true };
    }
    const raw = toRaw(tag, value);
    const current = s.layout.bit !== undefined ? (await conn.readRegisters(s.unitId, "holding", s.address, 1))[0] : 0;
    const words = encodeRegisters(raw, s.layout, current);
    progress.sent = true;
    await conn.writeRegisters(s.unitId, s.address, words);
    if (this.cfg.readBack) {
      const back = await conn.readRegisters(s.unitId, "holding", s.address, words.length);
      const mask = s.layout.bit !== undefined ? 1 << s.layout.bit : 0xffff;
      if (back.some((w, i) => (w & mask) !== (words[i]! & mask))) {
        return { ok: false, code: "readback_mismatch", error: `read back holding ${s.address}: [${back.join(", ")}], wrote [${words.join(", ")}]` };
      }
    }
    return { ok: true };
  }

  /** The ack code of a failed write: whether the request may have reached the device decides. */
  private writeFailure(conn: ModbusLink, unitId: number, e: unknown, sent: boolean): WriteResult {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof ModbusExceptionError) return { ok: false, code: e.code === 2 ? "device_address_error" : "device_error", error: message };
    if (e instanceof RegisterCodecError) return { ok: false, code: "refused_type_mismatch", error: message };
    if (e instanceof ModbusConnectError) return { ok: false, code: "device_error", error: `not written: ${message}` };
    if (e instanceof ModbusTimeoutError || e instanceof ModbusConnectionError || e instanceof RtuFrameError) {
      // whatever was sent may sit in the device's queue (or was executed and its answer garbled): drop
      // the connection, prove the next one
      conn.abandon(unitId);
      const code: AckCode = sent ? "timeout_outcome_unknown" : "device_busy";
      const outcome = sent ? "the value may or may not have been applied (read the tag back before retrying)" : "not written";
      return { ok: false, code, error: `${message}: ${outcome}` };
    }
    return { ok: false, code: "internal_error", error: `${(e as Error).name}: ${message}` };
  }

  async shutdown(): Promise<void> {
    const lease = this.lease;
    this.lease = null;
    this.lastQuality.clear();
    await lease?.release();
  }
}

export const createModbus = () => new ModbusDriver();
