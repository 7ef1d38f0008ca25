// The command executor: follows the log's cmd frames from its cursor, hands each to the driver that
// owns the tag (`driver.write(cmd, tag)`) and appends the AckFrame together with its cursor.
// Exactly-once across crashes (see drivers/README.md, "Command execution"): before the device call a
// `command.executing` marker is committed; after a restart a command with a marker and no ack is acked
// "outcome unknown after restart" instead of being written again, and a command without a marker is
// executed (once) unless it has expired. A command past its expiresAt is never executed.
// It is a durable log consumer (storage/consumer.ts, cursor "executor"): a read or commit error is
// logged, counted in its status and metrics, and retried from the cursor, never a silent stop.
import { nowMicros, type AckFrame, type AckCode, type Catalog, type CmdFrame, type EventFrame, type Logged, type Variable } from "../schemas/index.ts";
import { LogConsumer, Rewind, type ConsumerContext, type ConsumerLogger, type ConsumerStatus, type EventLog } from "../storage/index.ts";
import { deadline, settlesWithin, TIMED_OUT } from "../storage/time.ts";
import type { Driver, WriteResult } from "./contract.ts";
import type { DriverManager } from "./manager.ts";

export const EXECUTING_EVENT = "command.executing";
export const OUTCOME_UNKNOWN = "outcome unknown after restart";

export interface ExecutorOptions {
  log: EventLog;
  drivers: DriverManager;
  catalog: Catalog;
  /** cursor name; default "executor" */
  name?: string;
  /** longest a device write may take; then the ack says so (default 5000) */
  writeTimeoutMs?: number;
  /** called with errors of the consumer's passes (each is also logged, counted, and retried from the cursor) */
  onError?: (err: unknown) => void;
  logger?: ConsumerLogger;
}

type Plan = { kind: "ack"; code: AckCode; error?: string; source: string } | { kind: "write"; driverId: string; driver: Driver; tag: Variable } | { kind: "skip" };

const RUNNING = new Set(["Connected", "Active"]);

export class CommandExecutor {
  readonly name: string;
  private readonly writeTimeoutMs: number;
  private consumer: LogConsumer | null = null;
  /** ids acked / marked after the cursor, found by the recovery scan */
  private acked = new Set<string>();
  private marked = new Set<string>();
  /** the device call under way per driver (kept past its timeout until it settles) */
  private readonly inflight = new Map<string, Promise<unknown>>();
  /** counters for tests and metrics */
  readonly stats = { executed: 0, expired: 0, refused: 0, unknown: 0 };

  constructor(private readonly opts: ExecutorOptions) {
    this.name = opts.name ?? "executor";
    this.writeTimeoutMs = opts.writeTimeoutMs ?? 5000;
  }

  start(): void {
    this.consumer ??= new LogConsumer(this.opts.log, {
      name: this.name,
      kinds: ["cmd"],
      from: "cursor",
      // every pass (the first, and after an error) starts with the recovery scan from where it reads
      beforePass: (from, ctx) => this.reported(() => this.recover(from, ctx.signal)),
      handler: (page, ctx) => this.reported(() => this.handlePage(page as Logged<CmdFrame>[], ctx)),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    }).start();
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }

  /** The consumer's state, position, lag and errors. */
  status(): ConsumerStatus | null {
    return this.consumer?.status() ?? null;
  }

  private async reported(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (e) {
      if (!(e instanceof Rewind)) this.opts.onError?.(e);
      throw e;
    }
  }

  /** The acks and markers after the cursor: what a previous run did but did not commit as handled. */
  private async recover(from: number, signal: AbortSignal): Promise<void> {
    this.acked = new Set();
    this.marked = new Set();
    for await (const f of this.opts.log.read({ from, kinds: ["ack", "event"], signal })) {
      if (f.kind === "ack") this.acked.add(f.cmd);
      else if (f.kind === "event" && f.type === EXECUTING_EVENT && typeof f.data?.cmd === "string") this.marked.add(f.data.cmd);
    }
  }

  private plan(cmd: Logged<CmdFrame>): Plan {
    if (this.acked.has(cmd.id)) return { kind: "skip" };
    const tag = this.opts.catalog.get(cmd.tag);
    const source = tag?.driver ?? "executor";
    // started before the crash: the device may or may not have taken it; writing again could apply it twice
    if (this.marked.has(cmd.id)) return { kind: "ack", code: "outcome_unknown_restart", error: OUTCOME_UNKNOWN, source };
    if (nowMicros() > cmd.expiresAt) return { kind: "ack", code: "expired", error: "command expired before execution", source };
    if (!tag) return { kind: "ack", code: "refused_unknown_tag", error: `unknown tag '${cmd.tag}'`, source };
    if (tag.driver === undefined) return { kind: "ack", code: "not_supported", error: `tag '${tag.tag}' is computed by the gateway (derived), not written to a device`, source };
    const d = this.opts.drivers.driver(tag.driver);
    if (!d) return { kind: "ack", code: "driver_not_running", error: `driver '${tag.driver}' is not configured`, source };
    if (!d.driver || !RUNNING.has(d.state)) return { kind: "ack", code: "driver_not_running", error: `driver '${tag.driver}' is not running (state ${d.state})`, source };
    if (!d.driver.write) return { kind: "ack", code: "not_supported", error: `driver '${tag.driver}' does not support writes`, source };
    return { kind: "write", driverId: tag.driver, driver: d.driver, tag };
  }

  private async handlePage(page: Logged<CmdFrame>[], ctx: ConsumerContext): Promise<void> {
    // The cursor may only pass commands whose ack is committed. An ack carries the cursor in its own
    // transaction when every earlier command of the page is committed, up to the run of later ones
    // already committed; if that commit fails, neither moves, and the page ends in an error so that
    // the loop restarts from the cursor (where the marker turns the command into "outcome unknown").
    const committed = page.map(() => false);
    let failure: unknown = null;
    const reachIfDone = (i: number): number | undefined => {
      for (let j = 0; j < i; j++) if (!committed[j]) return undefined;
      let k = i;
      while (k + 1 < page.length && committed[k + 1]) k++;
      return page[k]!.offset;
    };
    const pending: Promise<void>[] = [];
    const finish = (i: number, ack: AckFrame | null): Promise<void> => {
      const reach = reachIfDone(i);
      // acks are awaited by a caller (REST, UA write, Modbus master): commit without the group delay
      const appended =
        reach !== undefined ? ctx.commit(ack ? [ack] : [], reach, { urgent: ack !== null }) : ack ? this.opts.log.append([ack], { urgent: true }) : Promise.resolve();
      return appended.then(
        () => void (committed[i] = true),
        (e) => void (failure ??= e),
      );
    };
    const plans = page.map((c) => this.plan(c));
    const writes: number[] = [];
    for (let i = 0; i < page.length; i++) {
      const p = plans[i]!;
      const cmd = page[i]!;
      if (p.kind === "skip") pending.push(finish(i, null));
      else if (p.kind === "ack") {
        if (p.code === "expired") this.stats.expired++;
        else if (p.code === "outcome_unknown_restart") this.stats.unknown++;
        else this.stats.refused++;
        pending.push(finish(i, this.ack(cmd, p.code, p.error, p.source)));
      } else writes.push(i);
    }
    if (writes.length) {
      // the markers are committed before any device call: a crash after this point is "outcome unknown"
      const markers: EventFrame[] = writes.map((i) => {
        const p = plans[i] as Extract<Plan, { kind: "write" }>;
        return { kind: "event", type: EXECUTING_EVENT, source: p.driverId, tag: page[i]!.tag, ts: nowMicros(), data: { cmd: page[i]!.id } };
      });
      await this.opts.log.append(markers, { urgent: true });
      // one chain per driver: a device sees its writes in order, a slow device does not hold up others
      const byDriver = new Map<string, number[]>();
      for (const i of writes) {
        const id = (plans[i] as Extract<Plan, { kind: "write" }>).driverId;
        byDriver.set(id, [...(byDriver.get(id) ?? []), i]);
      }
      await Promise.all(
        [...byDriver.values()].map(async (idx) => {
          for (const i of idx) {
            const p = plans[i] as Extract<Plan, { kind: "write" }>;
            const cmd = page[i]!;
            let ack: AckFrame;
            if (nowMicros() > cmd.expiresAt) {
              this.stats.expired++;
              ack = this.ack(cmd, "expired", "command expired before execution", p.driverId);
            } else {
              const r = await this.write(p.driverId, p.driver, cmd, p.tag);
              this.stats.executed++;
              ack = this.ack(cmd, r.ok ? "ok" : (r.code ?? "device_error"), r.error, p.driverId);
            }
            pending.push(finish(i, ack));
          }
        }),
      );
    }
    await Promise.all(pending); // never rejects: failures are collected
    if (failure) throw failure;
    const last = page[page.length - 1]!.offset;
    if (this.opts.log.cursor(this.name) < last) await ctx.commit([], last);
  }

  /** The device call, bounded in time; an exception becomes an error ack, never a crash. */
  private async write(driverId: string, driver: Driver, cmd: Logged<CmdFrame>, tag: Variable): Promise<WriteResult> {
    // A write that timed out may still be under way at the device: the next one to the same device
    // waits for it (one more timeout at most) rather than overtake it; if it is still not done, the
    // command is refused unwritten, so that writes never reach a device out of order.
    const previous = this.inflight.get(driverId);
    if (previous && (await settlesWithin(previous, this.writeTimeoutMs)) === false) {
      return { ok: false, code: "device_busy", error: "not written: the previous write to this device has not finished (device busy or hung)" };
    }
    try {
      // write is present: plan() checked it
      const call = Promise.resolve().then(() => driver.write!(cmd, tag));
      this.inflight.set(driverId, call);
      const done = () => {
        if (this.inflight.get(driverId) === call) this.inflight.delete(driverId);
      };
      call.then(done, done);
      const r = await deadline(call, this.writeTimeoutMs);
      if (r === TIMED_OUT) return { ok: false, code: "timeout_outcome_unknown", error: `device write timed out after ${this.writeTimeoutMs} ms (outcome unknown)` };
      return r as WriteResult;
    } catch (e) {
      return { ok: false, code: "internal_error", error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
    }
  }

  private ack(cmd: CmdFrame, code: AckCode, error: string | undefined, source: string): AckFrame {
    const status = code === "ok" ? "ok" : code === "expired" ? "expired" : "error";
    return { kind: "ack", cmd: cmd.id, tag: cmd.tag, ok: code === "ok", status, code, ...(error === undefined ? {} : { error }), ts: nowMicros(), source };
  }
}
