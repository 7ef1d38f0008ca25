// The driver manager: one supervisor per driver. States Loading -> Init -> Connected -> Active;
// a crash (readLoop throws or ends), a hang (no frame or heartbeat within the watchdog) or a failed
// connect goes Error -> Backoff (1 s, 2 s, 4 s ... capped) -> Connected again; too many crashes in a
// window -> Fault (and an alarm). Every real state change is an event frame in the log, not every
// step of a retry that fails the same way (drivers/state-journal.ts). One driver's
// failure never touches another: each runs in its own supervisor and every call into it is guarded.
// Quality follows the driver: when it leaves Connected/Active (crash, hang, Fault, stop, removal)
// every tag it owns gets a Bad frame at once, in one append, with the reason as quality (see README).
import { EventEmitter } from "node:events";
import { AlarmRequest, isBad, isGood, Quality, type DataFrame, type DriverEntry, type EventFrame, type Frame, type Variable } from "../schemas/index.ts";
import type { EventLog } from "../storage/index.ts";
import { lastEventsByTag } from "../storage/last-events.ts";
import { ABORTED, backoffDelay as retryDelay, deadline, delay, TIMED_OUT } from "../storage/time.ts";
import { filesChanged } from "../storage/watch.ts";
import { cameBack, PROBE_EVERY_MS, probeTarget } from "./reachable.ts";
import { DRIVER_API_VERSION, type Driver, type DriverFactory, type FrameSink } from "./contract.ts";
import type { Endpoint } from "./endpoint.ts";
import { DriverConfigError, DriverError } from "./errors.ts";
import { BadRepeats } from "./bad-repeats.ts";
import { MappingTable } from "./mapping.ts";
import { StateJournal } from "./state-journal.ts";
import { driverType } from "./plugins/registry.ts";

export type DriverState = "Loading" | "Init" | "Connected" | "Active" | "Error" | "Backoff" | "Fault" | "Shutdown";
export const DRIVER_STATES: readonly DriverState[] = ["Loading", "Init", "Connected", "Active", "Error", "Backoff", "Fault", "Shutdown"];

export interface SupervisorSettings {
  backoffBaseMs: number;
  backoffMaxMs: number;
  faultAfterCrashes: number;
  faultWindowMs: number;
  watchdogMs: number;
}

export const DEFAULT_SUPERVISOR: SupervisorSettings = {
  backoffBaseMs: 1000,
  backoffMaxMs: 60_000,
  faultAfterCrashes: 5,
  faultWindowMs: 300_000,
  watchdogMs: 30_000,
};

/** Delay before restart attempt `attempt` (1-based): base, 2*base, 4*base ... capped. */
export function backoffDelay(attempt: number, s: Pick<SupervisorSettings, "backoffBaseMs" | "backoffMaxMs">): number {
  return retryDelay(attempt, { initialMs: s.backoffBaseMs, maxMs: s.backoffMaxMs });
}

export interface DriverStatus {
  id: string;
  type: string;
  state: DriverState;
  restarts: number;
  errors: number;
  framesSent: number;
  framesRejected: number;
  lastError?: string;
  since: number;
}

/** Source timestamps in µs must fit DuckDB's BIGINT; qualities are uint32 StatusCodes. */
const MAX_TS_MICROS = 9.2e18;
const isStorable = (f: DataFrame): boolean =>
  Number.isFinite(f.ts) && Math.abs(f.ts) < MAX_TS_MICROS && Number.isInteger(f.quality) && f.quality >= 0 && f.quality <= 0xffffffff;

class HangError extends Error {
  override name = "HangError";
}

/** How one run of a driver ended: the error text ('' when stopped) and the quality its tags get. */
interface RunEnd {
  error: string;
  quality: number;
}

/** Why a supervisor is being stopped, as the quality its tags get. */
export type StopReason = "removed" | "stopped" | "paused";
const STOP_QUALITY: Record<StopReason, number> = { removed: Quality.Bad_OutOfService, stopped: Quality.Bad_NoCommunication, paused: Quality.Bad_OutOfService };

/**
 * At gateway start, before any driver or bridge: a tag whose latest committed value is Good was read
 * by a previous run, and nobody vouches for it now. It gets a frame with the same value and source
 * timestamp as Uncertain_LastUsableValue, committed before this resolves (so before any bridge serves
 * it), and stays so until its driver reads it again. Returns how many tags were marked.
 */
export async function markPreviousRunUncertain(log: EventLog, tags: readonly Variable[]): Promise<number> {
  const latest = log.latest();
  const frames: Frame[] = [];
  for (const t of tags) {
    const f = latest.get(t.tag);
    if (f && isGood(f.quality)) frames.push({ kind: "data", tag: f.tag, value: f.value, ts: f.ts, quality: Quality.Uncertain_LastUsableValue, source: f.source });
  }
  if (frames.length) await log.append(frames);
  return frames.length;
}

/** Supervises one driver instance. */
class Supervisor implements FrameSink {
  status: DriverStatus;
  driver: Driver | null = null;
  private crashes: number[] = [];
  private faulted = false;
  private faultClearTimer: ReturnType<typeof setTimeout> | undefined;
  /** the signal of the current run: a sink call from an older run (a hung loop that ignored its abort) is refused */
  private runSignal: AbortSignal | null = null;
  private lastActivity = 0;
  private readonly stop = new AbortController();
  private loop: Promise<void> | null = null;
  private readonly known: ReadonlySet<string>;
  /** expression, clamp and report by exception of this driver's tags (drivers/mapping.ts) */
  private readonly mapping: MappingTable;
  /** tags whose last frame (the driver's or a marking) was Bad, with that quality: repeats are dropped */
  private readonly lastBad: BadRepeats;
  private stopQuality: number = Quality.Bad_NoCommunication;
  /** which state changes become driver.state events */
  private readonly journal = new StateJournal();
  /** logs a run's Active once it has lasted the longest backoff, even without a frame that is not Bad */
  private proofTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly entry: DriverEntry,
    readonly endpoint: Endpoint | undefined,
    public tags: readonly Variable[],
    private readonly factory: DriverFactory | undefined,
    private readonly mgr: DriverManager,
  ) {
    this.status = { id: entry.id, type: driverType(entry), state: "Loading", restarts: 0, errors: 0, framesSent: 0, framesRejected: 0, since: Date.now() };
    this.known = new Set(tags.map((t) => t.tag));
    this.lastBad = new BadRepeats(tags);
    this.mapping = new MappingTable(tags, {
      failed: (tag, error) => this.event(AlarmRequest.MappingError, { error }, tag),
      recovered: (tag) => this.event(AlarmRequest.MappingRecovered, undefined, tag),
    });
  }

  /** A live edit of the read-side mapping (expression, clamp, deadband, report by exception): no restart. */
  remap(tags: readonly Variable[]): void {
    this.tags = tags;
    this.mapping.update(tags);
    this.lastBad.update(tags);
  }

  get isPaused(): boolean {
    return this.mgr.log.isPaused;
  }

  heartbeat(): void {
    this.lastActivity = performance.now();
  }

  send(frames: DataFrame[]): Promise<void> {
    const out = this.accept(frames);
    if (out.length) this.mgr.log.append(out).catch((e) => this.mgr.emit("appendError", this.entry.id, e));
    return this.mgr.log.isPaused ? this.mgr.log.waitForCapacity() : Promise.resolve();
  }

  async commit(frames: DataFrame[], opts?: { urgent?: boolean }): Promise<void> {
    const out = this.accept(frames);
    if (this.mgr.log.isPaused) await this.mgr.log.waitForCapacity();
    if (out.length) await this.mgr.log.append(out, opts?.urgent ? { urgent: true } : undefined);
  }

  owns(tag: string): boolean {
    return this.known.has(tag);
  }

  /**
   * Counts activity, refuses frames for tags this driver does not own or that the log cannot store, and
   * maps the rest (expression, clamp, report by exception: drivers/mapping.ts).
   */
  private accept(frames: DataFrame[]): DataFrame[] {
    this.lastActivity = performance.now();
    if (this.status.state === "Connected") {
      this.setState("Active");
      if (this.faulted) this.clearFaultIfHealthy();
    }
    let out: DataFrame[] = frames;
    // Frames for tags this driver does not own are refused and counted: never silently dropped,
    // never let into the log where consumers would trust them.
    let rejected = 0;
    // A frame the log cannot store (a timestamp that is not a 64-bit integer of microseconds, a
    // quality that is not a uint32) is refused here, alone: in the log's group commit it would fail
    // every other producer's frames of the same transaction.
    if (frames.some((f) => !this.known.has(f.tag) || !isStorable(f))) {
      out = [];
      for (const f of frames) {
        if (!this.known.has(f.tag)) {
          rejected++;
          this.mgr.emit("rejected", this.entry.id, f.tag, "unknown_tag");
        } else if (!isStorable(f)) {
          rejected++;
          this.mgr.emit("rejected", this.entry.id, f.tag, "invalid_frame");
        } else out.push(f);
      }
    }
    // a run is a recovery once it reads something (checked only until then: not per frame for long)
    if (this.journal.isUnproven && out.some((f) => !isBad(f.quality))) this.proveActive();
    const nowMs = Date.now();
    // the same Bad again (a device off through every retry) is not news: dropped before the mapping,
    // which leaves a Bad reading's quality as it is
    out = this.mapping.apply(this.lastBad.drop(out, nowMs), nowMs);
    this.status.framesRejected += rejected;
    this.status.framesSent += out.length;
    // while every tag is Good this is one comparison per frame
    if (!this.lastBad.isEmpty || out.some((f) => f.quality !== 0)) this.lastBad.note(out, nowMs);
    return out;
  }

  event(type: string, data?: Record<string, unknown>, tag?: string): void {
    const frame: EventFrame = { kind: "event", type, source: this.entry.id, ts: Date.now() * 1000, ...(tag ? { tag } : {}), ...(data ? { data } : {}) };
    this.mgr.appendEvent(frame);
    this.mgr.emit("event", frame);
  }

  setState(state: DriverState, data: Record<string, unknown> = {}): void {
    const previous = this.status.state;
    this.status.state = state;
    this.status.since = Date.now();
    if (typeof data.error === "string") this.status.lastError = data.error;
    const logged = this.journal.enter(state, data);
    if (logged) this.event("driver.state", logged);
    this.mgr.emit("state", this.entry.id, state, previous, data);
    if (this.journal.isUnproven) {
      clearTimeout(this.proofTimer);
      this.proofTimer = setTimeout(() => this.proveActive(), this.mgr.settings.backoffMaxMs);
    }
  }

  /**
   * The Active run has read the device (or lasted the longest backoff): its Active event, once. In
   * Fault, only once the fault clears (a run healthy for the longest backoff): a device that reads a
   * value and crashes at every retry stays one Fault in the log, as its alarm stays raised.
   */
  private proveActive(): void {
    if (this.faulted) return;
    clearTimeout(this.proofTimer);
    const logged = this.journal.proven();
    if (logged) this.event("driver.state", logged);
  }

  /**
   * Every tag of the driver that is not Bad yet gets a Bad frame now, in one append: a value the
   * driver no longer reads must not stay Good in the log (and so in every bridge). A tag whose last
   * frame is Bad already keeps it (the driver's own reason, e.g. Bad_Timeout, is the more precise one;
   * and repeated failures add nothing), unless `overrides`: a stop or removal says so on every tag.
   */
  markTagsBad(quality: number, overrides = false): void {
    const nowMs = Date.now();
    const ts = nowMs * 1000;
    const frames: Frame[] = [];
    for (const t of this.tags) {
      const bad = this.lastBad.quality(t.tag);
      if (bad === quality || (bad !== undefined && !overrides)) continue;
      // a tag a reload gave to another driver (already started) is that driver's to report now
      if (this.mgr.isOwnedByAnother(t.tag, this)) continue;
      this.lastBad.mark(t.tag, quality, nowMs);
      this.mapping.noteLogged(t.tag, null, quality, nowMs);
      frames.push({ kind: "data", tag: t.tag, value: null, ts, quality, source: this.entry.id });
    }
    if (frames.length) this.mgr.log.append(frames).catch((e) => this.mgr.emit("appendError", this.entry.id, e));
  }

  start(): void {
    this.loop = this.run().catch((e) => {
      // the supervisor itself must never die silently
      this.setState("Fault", { error: `supervisor: ${(e as Error).message}` });
      this.markTagsBad(Quality.Bad_NoCommunication);
    });
  }

  async shutdown(reason: StopReason = "stopped"): Promise<void> {
    this.stopQuality = STOP_QUALITY[reason];
    this.stop.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const signal = this.stop.signal;
    this.setState("Loading");
    try {
      if (!this.factory) throw new DriverConfigError(this.entry.id, "type", `unknown driver type '${driverType(this.entry)}' (known: ${this.mgr.types().join(", ")})`);
      this.driver = this.factory();
      const meta = this.driver.meta();
      if (meta.apiVersion !== DRIVER_API_VERSION) {
        throw new DriverConfigError(this.entry.id, "type", `driver '${meta.name}' speaks API v${meta.apiVersion}, the gateway v${DRIVER_API_VERSION}`);
      }
      this.setState("Init");
      const init = this.driver.init({
        id: this.entry.id,
        config: this.entry.config,
        tags: this.tags,
        ...(this.mgr.dataDir ? { dataDir: this.mgr.dataDir } : {}),
        lastEvents: (types) => lastEventsByTag(this.mgr.log, this.entry.id, types),
      });
      // init does no I/O by contract; one that hangs must not hold up stop() or a reload
      const initLimitMs = Math.max(this.mgr.settings.watchdogMs, 30_000);
      const outcome = await deadline(Promise.resolve(init), initLimitMs, signal);
      if (outcome === ABORTED) {
        this.markTagsBad(this.stopQuality, true);
        await this.safeShutdown();
        this.setState("Shutdown");
        return;
      }
      if (outcome === TIMED_OUT) throw new Error(`init did not finish within ${initLimitMs} ms`);
    } catch (e) {
      // a config error does not heal by retrying: Fault at once, with the reason
      this.status.errors++;
      this.setState("Fault", { error: (e as Error).message });
      this.markTagsBad(e instanceof DriverConfigError ? Quality.Bad_ConfigurationError : Quality.Bad_NoCommunication);
      this.raiseFaultAlarm((e as Error).message);
      return;
    }
    let attempt = 0;
    while (!signal.aborted) {
      const runStarted = performance.now();
      const end = await this.runOnce(signal);
      const error = end.error;
      // at once, before the driver's shutdown (up to 5 s for a hung one)
      this.markTagsBad(signal.aborted ? this.stopQuality : end.quality, signal.aborted);
      if (!signal.aborted) this.setState("Error", { error });
      await this.safeShutdown();
      if (signal.aborted) break;
      this.status.errors++;
      const now = performance.now();
      // a run that lasted longer than the longest backoff was healthy: start the ladder again
      if (now - runStarted > this.mgr.settings.backoffMaxMs) {
        attempt = 0;
        this.crashes = [];
      }
      this.crashes = this.crashes.filter((t) => now - t < this.mgr.settings.faultWindowMs);
      this.crashes.push(now);
      const faults = !this.faulted && this.crashes.length >= this.mgr.settings.faultAfterCrashes;
      if (faults) this.faulted = true;
      attempt++;
      // In Fault the driver is still retried, at the longest backoff: a device that comes back (a PLC
      // reboot, a cable) recovers without an operator; the alarm stays raised until it does.
      const delayMs = this.faulted ? this.mgr.settings.backoffMaxMs : backoffDelay(attempt, this.mgr.settings);
      if (this.faulted) this.setState("Fault", { error, crashes: this.crashes.length, retryInMs: delayMs });
      else this.setState("Backoff", { error, attempt, delayMs });
      if (faults) this.raiseFaultAlarm(error);
      await this.waitToRetry(delayMs, signal);
      if (!signal.aborted) this.status.restarts++;
    }
    this.markTagsBad(this.stopQuality, true);
    this.setState("Shutdown");
  }

  /**
   * The wait before the next run, cut short when a network device that was down accepts connections
   * again (./reachable.ts), or when a file the failure may hang on changes: a certificate
   * file of the endpoint (an unknown CA, a key not its certificate's, an expired client certificate is
   * fixed on disk) or the device of a serial line (a USB adapter plugged back creates its node again). A
   * driver in Fault would otherwise wait out the longest backoff (60 s) before using the fix.
   */
  private async waitToRetry(delayMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const watched = this.watchedFiles();
    // a network device that was down is tried every few seconds during a long wait (./reachable.ts)
    const target = delayMs > PROBE_EVERY_MS ? probeTarget(this.endpoint) : null;
    if (!watched.length && !target) return await delay(delayMs, signal);
    const waiting = new AbortController();
    const stop = () => waiting.abort();
    signal.addEventListener("abort", stop, { once: true });
    try {
      await Promise.race([
        delay(delayMs, waiting.signal),
        ...(watched.length ? [filesChanged(watched, waiting.signal)] : []),
        ...(target ? [cameBack(target, waiting.signal)] : []),
      ]);
    } finally {
      waiting.abort();
      signal.removeEventListener("abort", stop);
    }
  }

  /** The endpoint's certificate files, and the device of a serial line. */
  private watchedFiles(): string[] {
    const ep = this.endpoint;
    if (!ep) return [];
    const files = [ep.tls?.ca, ep.tls?.cert, ep.tls?.key].filter((p): p is string => p !== undefined);
    if (ep.scheme === "serial" && ep.path) files.push(ep.path);
    return files;
  }

  /**
   * After a Fault, the alarm is cleared once a run has produced frames and kept running for the
   * longest backoff: a driver that connects, sends one reading and crashes again stays in Fault.
   */
  private clearFaultIfHealthy(): void {
    const run = this.runSignal;
    clearTimeout(this.faultClearTimer);
    this.faultClearTimer = setTimeout(() => {
      if (run && this.runSignal === run && !run.aborted) this.clearFault();
    }, this.mgr.settings.backoffMaxMs);
  }

  private clearFault(): void {
    if (!this.faulted) return;
    this.faulted = false;
    this.mgr.appendEvent({
      kind: "event",
      type: "alarm.cleared",
      source: this.entry.id,
      ts: Date.now() * 1000,
      data: { alarm: "driver.fault", driver: this.entry.id },
    });
    this.proveActive();
  }

  private raiseFaultAlarm(reason: string): void {
    this.mgr.appendEvent({
      kind: "event",
      type: "alarm.raised",
      source: this.entry.id,
      ts: Date.now() * 1000,
      data: { alarm: "driver.fault", driver: this.entry.id, severity: "high", reason },
    });
  }

  /** One connect + readLoop; returns how it ended (error '' when stopped). */
  private async runOnce(stopSignal: AbortSignal): Promise<RunEnd> {
    const driver = this.driver!; // set before the loop starts
    const run = new AbortController();
    const onStop = () => run.abort();
    stopSignal.addEventListener("abort", onStop, { once: true });
    let watchdog: ReturnType<typeof setInterval> | undefined;
    try {
      // Rejects on a hang, and on stop: a driver that ignores its abort signal must not hold up
      // the manager's stop (it would otherwise wait for the watchdog, or forever without one).
      const hung = new Promise<never>((_, reject) => {
        run.signal.addEventListener("abort", () => reject(new Error("stopped")), { once: true });
        const ms = this.mgr.settings.watchdogMs;
        if (ms <= 0) return;
        this.lastActivity = performance.now();
        watchdog = setInterval(() => {
          // a driver waiting at the log's capacity (backpressure, a full disk) is held by us, not hung
          if (this.mgr.log.isPaused) this.lastActivity = performance.now();
          if (performance.now() - this.lastActivity > ms) reject(new HangError(`no frame or heartbeat for ${ms} ms (hung)`));
        }, Math.max(10, Math.min(1000, ms / 4)));
      });
      hung.catch(() => undefined);
      this.runSignal = run.signal;
      await Promise.race([driver.connect(this.endpoint, run.signal), hung]);
      if (stopSignal.aborted) return { error: "", quality: this.stopQuality };
      this.setState("Connected");
      await Promise.race([driver.readLoop(this.sinkFor(run.signal), run.signal), hung]);
      return { error: stopSignal.aborted ? "" : "read loop ended", quality: stopSignal.aborted ? this.stopQuality : Quality.Bad_CommunicationError };
    } catch (e) {
      if (stopSignal.aborted) return { error: "", quality: this.stopQuality };
      return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e), quality: e instanceof HangError ? Quality.Bad_Timeout : Quality.Bad_CommunicationError };
    } finally {
      clearInterval(watchdog);
      clearTimeout(this.faultClearTimer);
      clearTimeout(this.proofTimer);
      run.abort(); // a hung loop is told to stop; we do not wait for it
      stopSignal.removeEventListener("abort", onStop);
    }
  }

  private async safeShutdown(): Promise<void> {
    try {
      // a driver whose shutdown hangs is left behind after 5 s: stop and reload must go on
      await deadline(Promise.resolve().then(() => this.driver?.shutdown()), 5000);
    } catch (e) {
      this.mgr.emit("shutdownError", this.entry.id, e);
    }
  }

  /**
   * The sink one run of the driver writes to. Once that run is over (stopped, hung, crashed), its
   * calls are refused and counted: a loop that ignored its abort signal must not keep writing after a
   * restart, a removal or a reload (with tags it may no longer own).
   */
  private sinkFor(signal: AbortSignal): FrameSink {
    const self = this;
    const stale = () => signal.aborted || this.runSignal !== signal;
    const refuse = (frames: DataFrame[]) => {
      this.status.framesRejected += frames.length;
      for (const f of frames) this.mgr.emit("rejected", this.entry.id, f.tag, "stopped_run");
    };
    return {
      send: (frames) => (stale() ? (refuse(frames), Promise.resolve()) : this.send(frames)),
      commit: (frames, opts) => (stale() ? (refuse(frames), Promise.reject(new DriverError(this.entry.id, "this run of the driver has ended"))) : this.commit(frames, opts)),
      event: (type, data, tag) => {
        if (!stale()) this.event(type, data, tag);
      },
      heartbeat: () => {
        if (!stale()) this.heartbeat();
      },
      get isPaused() {
        return self.isPaused;
      },
    };
  }
}

export interface DriverManagerOptions {
  log: EventLog;
  factories: ReadonlyMap<string, DriverFactory>;
  settings?: Partial<SupervisorSettings>;
  /** handed to drivers at init (DriverInit.dataDir) */
  dataDir?: string;
}

/**
 * Events: 'state' (id, state, previous, data), 'event' (EventFrame a driver raised), 'rejected' (id, tag, reason),
 * 'appendError' (id, error), 'shutdownError' (id, error).
 */
export class DriverManager extends EventEmitter {
  readonly log: EventLog;
  readonly settings: SupervisorSettings;
  readonly dataDir: string | undefined;
  private readonly factories: ReadonlyMap<string, DriverFactory>;
  private readonly supervisors = new Map<string, Supervisor>();

  constructor(opts: DriverManagerOptions) {
    super();
    this.log = opts.log;
    this.factories = opts.factories;
    this.settings = { ...DEFAULT_SUPERVISOR, ...opts.settings };
    this.dataDir = opts.dataDir;
  }

  types(): string[] {
    return [...this.factories.keys()];
  }

  add(entry: DriverEntry, endpoint: Endpoint | undefined, tags: readonly Variable[]): void {
    if (this.supervisors.has(entry.id)) throw new DriverConfigError(entry.id, "id", "duplicate driver id");
    const sup = new Supervisor(entry, endpoint, tags, this.factories.get(driverType(entry)), this);
    this.supervisors.set(entry.id, sup);
    sup.start();
  }

  /** Applies a read-side mapping edit to a running driver (same driver, address and poll settings). */
  remap(id: string, tags: readonly Variable[]): void {
    this.supervisors.get(id)?.remap(tags);
  }

  async remove(id: string): Promise<void> {
    const sup = this.supervisors.get(id);
    if (!sup) return;
    this.supervisors.delete(id);
    await sup.shutdown("removed");
  }

  /**
   * An operator's restart (or resume after a pause): the running instance is shut down and a new one
   * started with the same entry, endpoint and tags; its counters (frames, errors) carry over, restarts + 1. A supervisor
   * stops once only (its abort signal), so a restart is a new one. False for an unknown id.
   */
  async restart(id: string): Promise<boolean> {
    const old = this.supervisors.get(id);
    if (!old) return false;
    await old.shutdown("stopped");
    if (this.supervisors.get(id) !== old) return true; // a reload or another restart replaced it meanwhile
    const next = new Supervisor(old.entry, old.endpoint, old.tags, this.factories.get(driverType(old.entry)), this);
    next.status.restarts = old.status.restarts + 1;
    next.status.errors = old.status.errors;
    next.status.framesSent = old.status.framesSent;
    next.status.framesRejected = old.status.framesRejected;
    this.supervisors.set(id, next);
    next.start();
    return true;
  }

  /** An operator's pause: the driver stops (state Shutdown, its tags Bad_OutOfService) and stays listed until resumed (restart). */
  async pause(id: string): Promise<boolean> {
    const sup = this.supervisors.get(id);
    if (!sup) return false;
    await sup.shutdown("paused");
    return true;
  }

  status(): DriverStatus[] {
    return [...this.supervisors.values()].map((s) => ({ ...s.status }));
  }

  /** The running driver instance with its tags (for command execution). */
  driver(id: string): { driver: Driver | null; tags: readonly Variable[]; state: DriverState } | undefined {
    const s = this.supervisors.get(id);
    return s && { driver: s.driver, tags: s.tags, state: s.status.state };
  }

  /** true when a supervisor other than `sup` owns the tag (after a reload moved it) */
  isOwnedByAnother(tag: string, sup: Supervisor): boolean {
    for (const s of this.supervisors.values()) if (s !== sup && s.owns(tag)) return true;
    return false;
  }

  appendEvent(frame: EventFrame): void {
    this.log.append([frame as Frame]).catch((e) => this.emit("appendError", frame.source, e));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.supervisors.values()].map((s) => s.shutdown()));
    this.supervisors.clear();
  }
}
