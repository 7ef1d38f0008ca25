// One Modbus RTU line (a serial device, or a TCP connection to a serial device server) shared by every
// driver and unit id on it. Half duplex: one request is outstanding at a time; queued requests are
// served round robin between unit ids, so that a unit with many reads (or a dead unit that costs a
// timeout each time) cannot starve the others. Timeouts, CRC errors and exceptions belong to the
// request's unit alone; only a link that is gone fails every unit. After any answer the line keeps
// the 3.5-character silence before the next request; after a request that got no answer it has waited
// the timeout, then keeps the silence and drops whatever arrived since, so that a late answer is never
// taken for the next request's. A link that is gone (pty closed, USB adapter unplugged, device server
// down) is reopened on the next request, no sooner than a backoff after the last failed open. A unit
// that let a request time out is tried again only after a backoff: its reads meanwhile fail at once
// (Bad_Timeout) instead of each costing the line a timeout, which cut the other units' pace to a third.
import { backoffDelay, sleepUntil, type BackoffSettings } from "../../storage/time.ts";
import { ModbusConnectError, ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError, type ModbusLink } from "./client.ts";
import type { Area } from "./plan.ts";
import { decodeAnswer, encodeRequest, expectedLength, RtuFrameError, wrongByteCount, type RtuRequest } from "./rtu-frame.ts";
import type { ByteLink } from "./serial-port.ts";

export interface RtuLineOptions {
  /** for error messages: the device path or host:port */
  name: string;
  open: () => Promise<ByteLink>;
  timeoutMs: number;
  /** inter-frame silence (rtu-frame.ts silenceMs; 0 behind a device server, which keeps it itself) */
  silenceMs: number;
  /** quiet time after opening, during which bytes left in the device from earlier are dropped */
  settleMs?: number;
  reopen?: BackoffSettings;
  /** how long a unit that did not answer waits for its next try (default 500 ms doubling to 5 s) */
  silentUnit?: BackoffSettings;
}

interface Pending {
  unitId: number;
  req: RtuRequest;
  resolve(data: number[] | boolean[]): void;
  reject(e: Error): void;
}

/** The longest RTU frame is 256 bytes; more without a complete frame is noise. */
const MAX_FRAME = 256;

export class RtuLine implements ModbusLink {
  private readonly queues = new Map<number, Pending[]>();
  /** unit ids in the order they first queued; `turn` is the index the round robin looks at next */
  private readonly units: number[] = [];
  private turn = 0;
  private pumping = false;
  private link: ByteLink | null = null;
  private openFailures = 0;
  private reopenAt = 0;
  /** why the last open failed: told to every driver on the line until the next attempt, not just the one that tried */
  private openError = "";
  /** performance.now() before which nothing may be sent: the last byte seen on the line + the silence */
  private quietUntil = 0;
  /** performance.now() when the last byte of the current answer arrived */
  private lastByteAt = 0;
  private readonly rx = Buffer.alloc(MAX_FRAME + 64);
  private rxLength = 0;
  /** the complete answer's length: bytes after it in the same read (a transceiver's glitch) are not part of it */
  private answerLength = 0;
  private onFrame: ((e: Error | null) => void) | null = null;
  private expecting: RtuRequest | null = null;
  private readonly unproven = new Set<number>();
  /** units whose last request timed out: requests in a row unanswered, and when to try the unit again */
  private readonly silentUnits = new Map<number, { unanswered: number; retryAt: number }>();
  private closed = false;
  /** requests sent per unit (for the fairness benchmark and metrics) */
  readonly sentPerUnit = new Map<number, number>();
  readonly queuesRequests = true;

  constructor(private readonly o: RtuLineOptions) {}

  get isOpen(): boolean {
    return this.link !== null;
  }

  isProven(unitId: number): boolean {
    return !this.unproven.has(unitId);
  }

  /**
   * After a write to `unitId` got no answer: its later writes are refused until it answers a request.
   * Nothing is queued in a serial device, so the line itself needs no new connection: it has waited
   * out the timeout and will drop any late answer before the next request.
   */
  abandon(unitId: number): void {
    this.unproven.add(unitId);
  }

  close(): void {
    this.closed = true;
    this.dropLink();
    for (const q of this.queues.values()) for (const p of q.splice(0)) p.reject(new ModbusConnectionError(`${this.o.name}: line closed`));
  }

  /** Queues a request for `unitId` and resolves with its data (or rejects with a named Modbus error). */
  request(unitId: number, req: RtuRequest): Promise<number[] | boolean[]> {
    if (this.closed) return Promise.reject(new ModbusConnectionError(`${this.o.name}: line closed`));
    return new Promise((resolve, reject) => {
      let q = this.queues.get(unitId);
      if (!q) {
        q = [];
        this.queues.set(unitId, q);
        this.units.push(unitId);
      }
      q.push({ unitId, req, resolve, reject });
      void this.pump();
    });
  }

  /** Round robin: the next unit after the one served last that has a request queued. */
  private next(): Pending | undefined {
    const n = this.units.length;
    for (let i = 0; i < n; i++) {
      const k = (this.turn + i) % n;
      const p = this.queues.get(this.units[k]!)!.shift();
      if (p) {
        this.turn = k + 1;
        return p;
      }
    }
    return undefined;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let p = this.takeNext();
      let running = p ? this.run(p) : null;
      while (p && running) {
        let data: number[] | boolean[] | undefined;
        let error: unknown;
        try {
          data = await running;
        } catch (e) {
          error = e;
        }
        // the unit's state before the next request is taken: it may be the same unit's
        if (error === undefined || error instanceof ModbusExceptionError) this.answered(p.unitId); // an exception is an answer all the same
        else if (error instanceof ModbusTimeoutError) this.unanswered(p.unitId);
        // the next request goes out before this answer is handed over (when the silence allows it at
        // once): its driver decodes and logs while the device works on the next one
        const following = this.takeNext();
        const next = following ? this.run(following) : null;
        if (error === undefined) p.resolve(data!);
        else p.reject(error as Error);
        p = following;
        running = next;
      }
    } finally {
      this.pumping = false;
    }
  }

  /** The next request to send; reads of a unit on hold are failed on the way (heldBack). */
  private takeNext(): Pending | undefined {
    for (let p = this.next(); p; p = this.next()) {
      const held = this.heldBack(p);
      if (!held) return p;
      p.reject(held);
    }
    return undefined;
  }

  private answered(unitId: number): void {
    this.unproven.delete(unitId);
    this.silentUnits.delete(unitId);
  }

  private unanswered(unitId: number): void {
    const n = (this.silentUnits.get(unitId)?.unanswered ?? 0) + 1;
    this.silentUnits.set(unitId, { unanswered: n, retryAt: performance.now() + backoffDelay(n, this.o.silentUnit ?? { initialMs: 500, maxMs: 5000 }) });
  }

  /**
   * A read for a unit that is waiting for its next try: failed unsent, so that a dead unit does not cost
   * the line a timeout per read. Writes are always sent (rare, and the operator is waiting for them).
   */
  private heldBack(p: Pending): ModbusTimeoutError | null {
    const silent = this.silentUnits.get(p.unitId);
    const wait = silent ? silent.retryAt - performance.now() : 0;
    if (!silent || wait <= 0 || p.req.fc > 4) return null;
    return new ModbusTimeoutError(`unit ${p.unitId}: not answering (${silent.unanswered} requests in a row timed out); tried again in ${Math.ceil(wait)} ms`);
  }

  private async ensureOpen(): Promise<ByteLink> {
    if (this.link) return this.link;
    const wait = this.reopenAt - performance.now();
    // the open's own error, without a countdown: it becomes the driver's lastError, shown as long as the driver waits
    // (a "next attempt in 343 ms" read a minute later in Fault misleads; the driver's retryInMs says when)
    if (wait > 0) throw new ModbusConnectError(this.openError);
    let link: ByteLink;
    try {
      link = await this.o.open();
    } catch (e) {
      this.openFailures++;
      this.reopenAt = performance.now() + backoffDelay(this.openFailures, this.o.reopen ?? { initialMs: 100, maxMs: 5000 });
      const why = (e as Error).message;
      this.openError = why.includes(this.o.name) ? why : `${this.o.name}: ${why}`; // the opener's messages name the device already
      throw new ModbusConnectError(this.openError);
    }
    if (this.closed) {
      link.close();
      throw new ModbusConnectionError(`${this.o.name}: line closed`);
    }
    this.openFailures = 0;
    this.link = link;
    link.onData = (b) => this.receive(b);
    link.onClose = (why) => {
      if (this.link !== link) return;
      this.link = null;
      this.onFrame?.(new ModbusConnectionError(`${this.o.name}: ${why.message}`));
    };
    // bytes a pty or an adapter kept from an earlier session arrive now and are dropped (no request is waiting)
    this.quietUntil = Math.max(this.quietUntil, performance.now() + (this.o.settleMs ?? 20));
    return link;
  }

  private dropLink(): void {
    const link = this.link;
    this.link = null;
    link?.close();
  }

  private receive(b: Buffer): void {
    const req = this.expecting;
    if (!req) {
      // nobody asked (stale or late bytes): dropped, and the line is not silent until they stop
      this.quietUntil = Math.max(this.quietUntil, performance.now() + this.o.silenceMs);
      return;
    }
    this.lastByteAt = performance.now();
    const room = this.rx.length - this.rxLength;
    b.copy(this.rx, this.rxLength, 0, Math.min(room, b.length));
    this.rxLength += Math.min(room, b.length);
    const wrong = wrongByteCount(req, this.rx, this.rxLength);
    if (wrong) {
      this.onFrame?.(new RtuFrameError(wrong));
      return;
    }
    const want = expectedLength(req, this.rx, this.rxLength);
    if (want !== undefined && this.rxLength >= want) {
      this.answerLength = want;
      this.onFrame?.(null);
    } else if (this.rxLength > MAX_FRAME) this.onFrame?.(new RtuFrameError(`${this.rxLength} bytes without a complete answer`));
  }

  /**
   * Sends one request and waits for its answer, its timeout, or the end of the link. When the link is
   * open and the silence is over, the request is written before this returns (see pump).
   */
  private run(p: Pending): Promise<number[] | boolean[]> {
    const link = this.link;
    if (link && this.quietUntil <= performance.now()) return this.exchange(link, p);
    return this.openAndExchange(p);
  }

  private async openAndExchange(p: Pending): Promise<number[] | boolean[]> {
    const link = await this.ensureOpen();
    // exact, never short: a timer alone would cut a fractional silence (1.75 ms) to ~1.1 ms
    while (this.quietUntil > performance.now()) await sleepUntil(this.quietUntil);
    if (this.link !== link) throw new ModbusConnectionError(`${this.o.name}: the line closed`);
    return await this.exchange(link, p);
  }

  private async exchange(link: ByteLink, p: Pending): Promise<number[] | boolean[]> {
    this.rxLength = 0; // whatever arrived during the silence is not an answer to this request
    this.expecting = p.req;
    const outcome = await new Promise<Error | null | "timeout">((resolve) => {
      const timer = setTimeout(() => resolve("timeout"), this.o.timeoutMs);
      this.onFrame = (e) => {
        clearTimeout(timer);
        resolve(e);
      };
      try {
        link.write(encodeRequest(p.unitId, p.req));
        this.sentPerUnit.set(p.unitId, (this.sentPerUnit.get(p.unitId) ?? 0) + 1);
      } catch (e) {
        this.onFrame(new ModbusConnectionError(`${this.o.name}: ${(e as Error).message}`));
      }
    });
    this.onFrame = null;
    this.expecting = null;
    // the silence runs from the answer's last byte (it was on the wire before we saw it), else from now
    this.quietUntil = (outcome === null ? this.lastByteAt : performance.now()) + this.o.silenceMs;
    if (outcome === "timeout") throw new ModbusTimeoutError(`unit ${p.unitId}: no answer within ${this.o.timeoutMs} ms`);
    if (outcome instanceof ModbusConnectionError) throw outcome;
    if (outcome) throw outcome;
    const answer = decodeAnswer(p.unitId, p.req, this.rx.subarray(0, this.answerLength));
    if (!answer.ok) throw new ModbusExceptionError(answer.exception);
    return answer.data;
  }

  readRegisters(unitId: number, area: "holding" | "input", start: number, count: number): Promise<number[]> {
    return this.request(unitId, { fc: area === "holding" ? 3 : 4, address: start, count }) as Promise<number[]>;
  }

  readBits(unitId: number, area: "coil" | "discrete", start: number, count: number): Promise<boolean[]> {
    return this.request(unitId, { fc: area === "coil" ? 1 : 2, address: start, count }) as Promise<boolean[]>;
  }

  read(unitId: number, area: Area, start: number, count: number): Promise<number[] | boolean[]> {
    return area === "coil" || area === "discrete" ? this.readBits(unitId, area, start, count) : this.readRegisters(unitId, area, start, count);
  }

  async writeRegisters(unitId: number, address: number, values: number[]): Promise<void> {
    await this.request(unitId, values.length === 1 ? { fc: 6, address, value: values[0]! } : { fc: 16, address, values });
  }

  async writeCoils(unitId: number, address: number, values: boolean[]): Promise<void> {
    await this.request(unitId, values.length === 1 ? { fc: 5, address, value: values[0]! } : { fc: 15, address, values });
  }
}
