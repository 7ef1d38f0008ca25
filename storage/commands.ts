// The command bus: every write from outside (REST, MQTT, OPC UA, Modbus slave, rules) becomes a
// CmdFrame through `submit`, and whoever asked waits for its AckFrame through `waitForAck`. The
// acks are appended by the command executor (drivers/executor.ts); the bus reads the log's cmd and ack
// frames through a supervised LogConsumer (storage/consumer.ts: a read error is retried, never fatal).
// Commands are found by id in memory (recent ones) and else in the log table, so an id given twice
// (an Idempotency-Key, an MQTT redelivery) returns the first command instead of writing twice.
// An ack is never missed: while the consumer is not delivering (retrying, or behind the head when a
// wait times out) waiting acks are looked up in the table, so a write is never answered "no ack"
// when its ack is committed (a Modbus master told 04 would write again).
import { EventEmitter } from "node:events";
import type { DuckDBConnection } from "@duckdb/node-api";
import { nowMicros, type AckFrame, type CmdFrame, type Logged, type Origin, type Value } from "../schemas/frames.ts";
import { LOG_COLUMNS, KIND_CODE, rowToFrame, type LogRow } from "./codec.ts";
import { consume, type ConsumerLogger, type ConsumerStatus, type LogConsumer } from "./consumer.ts";
import type { EventLog } from "./log.ts";
import type { BackoffSettings } from "./time.ts";
import { closeQuietly } from "./database.ts";
import { LogDegradedError } from "./errors.ts";

export interface SubmitCommand {
  tag: string;
  value: Value;
  origin: Origin;
  actor: string;
  tenant: string;
  /** default crypto.randomUUID(); a command with an id already in the log is not appended again */
  id?: string;
  /** time to live: past it the command is never executed (acked "expired"); default 30000 */
  ttlMs?: number;
}

export interface CommandRecord {
  cmd: Logged<CmdFrame>;
  ack: Logged<AckFrame> | null;
}

export interface ListCommands {
  tag?: string;
  tenant?: string;
  /** only commands on one of these tags (a reader's readable tags); [] lists nothing */
  tags?: readonly string[];
  /** commands accepted at or after this instant, µs since the epoch */
  sinceMicros?: number;
  /** commands accepted at or before this instant, µs since the epoch */
  untilMicros?: number;
  /** who wrote (the command's actor: a JWT sub, `cert:<subject>`, a rule) */
  actor?: string;
  /** where from: rest, mqtt, opcua, modbus, rule, nats */
  origin?: string;
  /** the ack's code (ok, expired, device_error ...), or "pending" for commands without an ack yet */
  code?: string;
  /** default 100, at most 1000 */
  limit?: number;
}

export const DEFAULT_TTL_MS = 30_000;

/** Bounded map: the oldest entries leave first (Map keeps insertion order). */
class Recent<V> extends Map<string, V> {
  constructor(private readonly cap: number) {
    super();
  }
  override set(k: string, v: V): this {
    super.delete(k);
    super.set(k, v);
    if (this.size > this.cap) this.delete(this.keys().next().value as string);
    return this;
  }
}

export interface CommandBusOptions {
  /** commands and acks kept in memory (default 10000 each) */
  recent?: number;
  /** the consumer's name (metrics label); default "commands" */
  name?: string;
  /** retry delays of its consumer after a read error (default storage/consumer.ts's) */
  retry?: BackoffSettings;
  logger?: ConsumerLogger;
  /** while the consumer is retrying, waiting acks are looked up in the table this often (default 250 ms) */
  pollMs?: number;
}

/**
 * Events: 'command' (Logged<CmdFrame>) for every command committed, 'ack' (Logged<AckFrame>,
 * Logged<CmdFrame> | undefined) for every ack committed (the command when still in memory).
 */
export class CommandBus extends EventEmitter {
  readonly name: string;
  private readonly cmds: Recent<Logged<CmdFrame>>;
  private readonly acks: Recent<Logged<AckFrame>>;
  private readonly submitting = new Map<string, Promise<Logged<CmdFrame>>>();
  private readonly waiters = new Map<string, Set<(a: Logged<AckFrame> | null) => void>>();
  private consumer: LogConsumer | null = null;
  /** the head when the consumer started: acks after it are delivered by the consumer (and emitted once) */
  private startHead = Number.MAX_SAFE_INTEGER;
  private polling: ReturnType<typeof setInterval> | null = null;
  private conn: Promise<DuckDBConnection> | null = null;
  /** the log's generation `conn` was made under: a reopen of the database makes it dead */
  private connGeneration = 0;
  private sqlQueue: Promise<unknown> = Promise.resolve();
  private readonly onConsumerError = (name: string) => {
    if (name === this.name) this.pollWhileRetrying();
  };

  constructor(
    readonly log: EventLog,
    private readonly opts: CommandBusOptions = {},
  ) {
    super();
    this.name = opts.name ?? "commands";
    this.cmds = new Recent(opts.recent ?? 10_000);
    this.acks = new Recent(opts.recent ?? 10_000);
  }

  /** Follows the log's cmd and ack frames from the head onwards (older ones are found with SQL). */
  start(): void {
    if (this.consumer) return;
    this.log.on("consumerError", this.onConsumerError);
    this.startHead = this.log.head; // the consumer starts after it, in the same synchronous step
    this.consumer = consume(this.log, {
      name: this.name,
      from: "head",
      kinds: ["cmd", "ack"],
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
      handler: (page) => {
        for (const f of page) {
          if (f.kind === "cmd") this.remember(f as Logged<CmdFrame>);
          else if (f.kind === "ack") this.resolveAck(f as Logged<AckFrame>);
        }
      },
    });
  }

  async stop(): Promise<void> {
    this.log.off("consumerError", this.onConsumerError);
    this.stopPolling();
    await this.consumer?.stop();
    for (const set of this.waiters.values()) set.clear();
    this.waiters.clear();
    const conn = this.conn;
    this.conn = null;
    if (conn) (await conn.catch(() => null))?.closeSync();
  }

  /** The state of its log consumer (null before start), for health and tests. */
  consumerStatus(): ConsumerStatus | null {
    return this.consumer?.status() ?? null;
  }

  /** true when the consumer is reading (not retrying, not stopped): it will deliver every ack after its position */
  private reading(): boolean {
    return this.consumer?.status().state === "running";
  }

  /** true when every ack committed up to `head` has reached the waiters through the consumer */
  private caughtUp(head: number): boolean {
    return this.reading() && this.consumer!.handledUpTo >= head;
  }

  /** While the consumer retries, the waiting acks are looked up in the table (one query per round). */
  private pollWhileRetrying(): void {
    if (this.polling) return;
    this.polling = setInterval(() => {
      const ids = [...this.waiters.keys()];
      if (this.consumer?.status().state !== "retrying") this.stopPolling();
      if (ids.length === 0) return;
      this.findAcks(ids).then(
        (found) => found.forEach((a) => this.resolveAck(a)),
        () => undefined, // the next round or the wait's timeout looks again
      );
    }, this.opts.pollMs ?? 250);
  }

  private stopPolling(): void {
    if (this.polling) clearInterval(this.polling);
    this.polling = null;
  }

  private remember(cmd: Logged<CmdFrame>): void {
    if (this.cmds.has(cmd.id)) return;
    this.cmds.set(cmd.id, cmd);
    this.emit("command", cmd);
  }

  /** Records an ack (the first per command) and answers its waiters; found in the table or delivered. */
  private resolveAck(ack: Logged<AckFrame>): void {
    if (this.acks.has(ack.cmd)) return;
    this.acks.set(ack.cmd, ack);
    // acks of before the start (found in the table) were this bus's events in an earlier run
    if (ack.offset > this.startHead) this.emit("ack", ack, this.cmds.get(ack.cmd));
    const set = this.waiters.get(ack.cmd);
    if (!set) return;
    this.waiters.delete(ack.cmd);
    for (const w of set) w(ack);
  }

  /**
   * Appends the CmdFrame and resolves when it is committed (not executed). If a command with the
   * same id is already in the log (or being appended), resolves with that first command instead.
   * Rejects with LogDegradedError while the log is degraded (storage/README.md, "Disk full").
   */
  submit(c: SubmitCommand): Promise<Logged<CmdFrame>> {
    // Someone waits to answer a request: while commits fail (disk full ...) a clear refusal now, with
    // nothing recorded, beats an answer held for the length of the outage. Frames already queued stay.
    const reason = this.log.health().reason;
    if (reason !== null) return Promise.reject(new LogDegradedError(reason));
    const id = c.id ?? crypto.randomUUID();
    const inFlight = this.submitting.get(id);
    if (inFlight) return inFlight;
    const p = (async () => {
      const existing = c.id === undefined ? null : await this.find(id);
      if (existing) return existing;
      const ts = nowMicros();
      const frame: CmdFrame = {
        kind: "cmd",
        id,
        tag: c.tag,
        value: c.value,
        origin: c.origin,
        actor: c.actor,
        tenant: c.tenant,
        ts,
        expiresAt: ts + (c.ttlMs ?? DEFAULT_TTL_MS) * 1000,
      };
      await this.log.append([frame], { urgent: true });
      const logged = frame as Logged<CmdFrame>; // the log added offset and loggedAt at commit
      this.remember(logged);
      return logged;
    })();
    this.submitting.set(id, p);
    p.then(
      () => this.submitting.delete(id),
      () => this.submitting.delete(id),
    );
    return p;
  }

  /**
   * Resolves with the AckFrame for command `id` once committed, or null when none is committed within
   * timeoutMs. An ack the consumer did not deliver (it was retrying or behind) is found in the table.
   */
  waitForAck(id: string, timeoutMs: number): Promise<Logged<AckFrame> | null> {
    const known = this.acks.get(id);
    if (known) return Promise.resolve(known);
    return new Promise((resolve) => {
      let done = false;
      const finish = (a: Logged<AckFrame> | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const set = this.waiters.get(id);
        set?.delete(finish);
        if (set?.size === 0) this.waiters.delete(id);
        resolve(a);
      };
      const lookUp = () => this.findAck(id).then((a) => a && this.resolveAck(a), () => undefined);
      const timer = setTimeout(() => {
        // the consumer may not have delivered an ack committed in time: ask the table before saying "none"
        if (this.caughtUp(this.log.head)) return finish(null);
        void lookUp().finally(() => finish(this.acks.get(id) ?? null));
      }, Math.max(0, timeoutMs));
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      set.add(finish);
      // an ack committed before this bus started following, or while it was not delivering, is only in the table
      if (!this.cmds.has(id) || !this.reading()) void lookUp();
    });
  }

  /** submit + waitForAck */
  async execute(c: SubmitCommand, timeoutMs: number): Promise<CommandRecord> {
    const cmd = await this.submit(c);
    return { cmd, ack: await this.waitForAck(cmd.id, timeoutMs) };
  }

  /** The command with this id, from memory or the log table; null when there is none. */
  async find(id: string): Promise<Logged<CmdFrame> | null> {
    const known = this.cmds.get(id);
    if (known) return known;
    const rows = await this.sql(`SELECT ${LOG_COLUMNS} FROM log WHERE kind = ${KIND_CODE.cmd} AND json_extract_string(body, '$.id') = $id ORDER BY "offset" LIMIT 1`, { id });
    return rows.length ? (rowToFrame(rows[0]!) as Logged<CmdFrame>) : null;
  }

  /** The ack of command `id`, from memory or the log table; null when it has none yet. */
  async findAck(id: string): Promise<Logged<AckFrame> | null> {
    const known = this.acks.get(id);
    return known ?? (await this.findAcks([id]))[0] ?? null;
  }

  /** The acks of these commands found in the log table (the first of each), after the oldest one in memory. */
  private async findAcks(ids: readonly string[]): Promise<Logged<AckFrame>[]> {
    // an ack comes after its command: when every command is in memory, scan only from the oldest
    const offsets = ids.map((id) => this.cmds.get(id)?.offset);
    const after = offsets.every((o) => o !== undefined) ? Math.min(...(offsets as number[])) : 0;
    const list = ids.map((id) => `'${id.replaceAll("'", "''")}'`).join(", ");
    const rows = await this.sql(`SELECT ${LOG_COLUMNS} FROM log WHERE kind = ${KIND_CODE.ack} AND "offset" > ${after} AND json_extract_string(body, '$.cmd') IN (${list}) ORDER BY "offset"`, {});
    return rows.map((r) => rowToFrame(r) as Logged<AckFrame>);
  }

  /** A command with its ack (or null), for status and audit. */
  async record(id: string): Promise<CommandRecord | null> {
    const cmd = await this.find(id);
    return cmd && { cmd, ack: await this.findAck(id) };
  }

  /** Commands (newest first) with their acks, from the log table: the audit trail. */
  async list(q: ListCommands = {}): Promise<CommandRecord[]> {
    const limit = Math.min(1000, Math.max(1, q.limit ?? 100));
    const where = [`kind = ${KIND_CODE.cmd}`];
    const params: Record<string, string | bigint> = {};
    if (q.tag !== undefined) {
      where.push("tag = $tag");
      params.tag = q.tag;
    }
    if (q.tags !== undefined) {
      if (q.tags.length === 0) return [];
      where.push(`tag IN (${q.tags.map((t) => `'${t.replaceAll("'", "''")}'`).join(", ")})`);
    }
    if (q.tenant !== undefined) {
      where.push("json_extract_string(body, '$.tenant') = $tenant");
      params.tenant = q.tenant;
    }
    if (q.sinceMicros !== undefined) {
      where.push("ts >= $since");
      params.since = BigInt(Math.trunc(q.sinceMicros));
    }
    if (q.untilMicros !== undefined) {
      where.push("ts <= $until");
      params.until = BigInt(Math.trunc(q.untilMicros));
    }
    if (q.actor !== undefined) {
      where.push("json_extract_string(body, '$.actor') = $actor");
      params.actor = q.actor;
    }
    if (q.origin !== undefined) {
      where.push("json_extract_string(body, '$.origin') = $origin");
      params.origin = q.origin;
    }
    if (q.code !== undefined) {
      // filtered in SQL, so that the limit counts matching commands; legacy acks without a code do not match
      const acked = `SELECT json_extract_string(body, '$.cmd') FROM log WHERE kind = ${KIND_CODE.ack}`;
      if (q.code === "pending") where.push(`json_extract_string(body, '$.id') NOT IN (${acked})`);
      else {
        where.push(`json_extract_string(body, '$.id') IN (${acked} AND json_extract_string(body, '$.code') = $code)`);
        params.code = q.code;
      }
    }
    const cmdRows = await this.sql(`SELECT ${LOG_COLUMNS} FROM log WHERE ${where.join(" AND ")} ORDER BY "offset" DESC LIMIT ${limit}`, params);
    const cmds = cmdRows.map((r) => rowToFrame(r) as Logged<CmdFrame>);
    if (!cmds.length) return [];
    const minOffset = cmds[cmds.length - 1]!.offset;
    // acks always come after their command: one scan from the oldest command listed
    const ackRows = await this.sql(`SELECT ${LOG_COLUMNS} FROM log WHERE kind = ${KIND_CODE.ack} AND "offset" > ${minOffset}`, {});
    const acks = new Map<string, Logged<AckFrame>>();
    for (const r of ackRows) {
      const a = rowToFrame(r) as Logged<AckFrame>;
      if (!acks.has(a.cmd)) acks.set(a.cmd, a);
    }
    return cmds.map((cmd) => ({ cmd, ack: acks.get(cmd.id) ?? null }));
  }

  /** One connection for lookups, its queries run one at a time. */
  private sql(text: string, params: Record<string, string | bigint>): Promise<LogRow[]> {
    const run = this.sqlQueue.then(async () => {
      if (this.conn && this.connGeneration !== this.log.generation) {
        // the log reopened its database (it had been invalidated): this connection is dead
        const old = this.conn;
        this.conn = null;
        closeQuietly(await old.catch(() => null));
      }
      if (!this.conn) {
        this.connGeneration = this.log.generation;
        // a failed connect is not kept: the next lookup tries again
        this.conn = this.log.connect().catch((e) => {
          this.conn = null;
          throw e;
        });
      }
      const conn = await this.conn;
      return (await conn.runAndReadAll(text, params)).getRows() as unknown as LogRow[];
    });
    this.sqlQueue = run.catch(() => undefined);
    return run;
  }
}
