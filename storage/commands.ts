// The command bus: every write from outside (REST, MQTT, OPC UA, Modbus slave, rules) becomes a
// CmdFrame through `submit`, and whoever asked waits for its AckFrame through `waitForAck`. The
// acks are appended by the command executor (drivers/executor.ts); the bus only follows the log.
// Commands are found by id in memory (recent ones) and else in the log table, so an id given twice
// (an Idempotency-Key, an MQTT redelivery) returns the first command instead of writing twice.
import { EventEmitter } from "node:events";
import type { DuckDBConnection } from "@duckdb/node-api";
import { nowMicros, type AckFrame, type CmdFrame, type Logged, type Origin, type Value } from "../schemas/frames.ts";
import { LOG_COLUMNS, KIND_CODE, rowToFrame, type LogRow } from "./codec.ts";
import type { EventLog } from "./log.ts";

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

/**
 * Events: 'command' (Logged<CmdFrame>) for every command committed, 'ack' (Logged<AckFrame>,
 * Logged<CmdFrame> | undefined) for every ack committed (the command when still in memory).
 */
export class CommandBus extends EventEmitter {
  private readonly cmds: Recent<Logged<CmdFrame>>;
  private readonly acks: Recent<Logged<AckFrame>>;
  private readonly submitting = new Map<string, Promise<Logged<CmdFrame>>>();
  private readonly waiters = new Map<string, Set<(a: Logged<AckFrame>) => void>>();
  private readonly stopper = new AbortController();
  private following: Promise<void> | null = null;
  private conn: Promise<DuckDBConnection> | null = null;
  private sqlQueue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly log: EventLog,
    opts: { recent?: number } = {},
  ) {
    super();
    this.cmds = new Recent(opts.recent ?? 10_000);
    this.acks = new Recent(opts.recent ?? 10_000);
  }

  /** Follows the log's cmd and ack frames from the head onwards (older ones are found with SQL). */
  start(): void {
    if (this.following) return;
    const from = this.log.head + 1;
    this.following = (async () => {
      for await (const page of this.log.follow({ from, kinds: ["cmd", "ack"], signal: this.stopper.signal })) {
        for (const f of page) {
          if (f.kind === "cmd") this.remember(f as Logged<CmdFrame>);
          else if (f.kind === "ack") this.resolveAck(f as Logged<AckFrame>);
        }
      }
    })().catch((e) => {
      // an 'error' event without a listener would throw; the gateway listens and logs it
      if (this.listenerCount("error") > 0) this.emit("error", e);
    });
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await this.following;
    for (const set of this.waiters.values()) set.clear();
    this.waiters.clear();
    const conn = this.conn;
    this.conn = null;
    if (conn) (await conn.catch(() => null))?.closeSync();
  }

  private remember(cmd: Logged<CmdFrame>): void {
    if (this.cmds.has(cmd.id)) return;
    this.cmds.set(cmd.id, cmd);
    this.emit("command", cmd);
  }

  private resolveAck(ack: Logged<AckFrame>): void {
    if (this.acks.has(ack.cmd)) return;
    this.acks.set(ack.cmd, ack);
    this.emit("ack", ack, this.cmds.get(ack.cmd));
    const set = this.waiters.get(ack.cmd);
    if (!set) return;
    this.waiters.delete(ack.cmd);
    for (const w of set) w(ack);
  }

  /**
   * Appends the CmdFrame and resolves when it is committed (not executed). If a command with the
   * same id is already in the log (or being appended), resolves with that first command instead.
   */
  submit(c: SubmitCommand): Promise<Logged<CmdFrame>> {
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

  /** Resolves with the AckFrame for command `id` once committed, or null after timeoutMs. */
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
      const timer = setTimeout(() => finish(null), Math.max(0, timeoutMs));
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      set.add(finish);
      // an ack committed before this bus started following is only in the table
      if (!this.cmds.has(id)) this.findAck(id).then((a) => a && finish(a), () => undefined);
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
    if (known) return known;
    const rows = await this.sql(`SELECT ${LOG_COLUMNS} FROM log WHERE kind = ${KIND_CODE.ack} AND json_extract_string(body, '$.cmd') = $id ORDER BY "offset" LIMIT 1`, { id });
    return rows.length ? (rowToFrame(rows[0]!) as Logged<AckFrame>) : null;
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
    this.conn ??= this.log.connect();
    const run = this.sqlQueue.then(async () => {
      const conn = await this.conn!; // set just above; stop() clears it only after the follower ended
      return (await conn.runAndReadAll(text, params)).getRows() as unknown as LogRow[];
    });
    this.sqlQueue = run.catch(() => undefined);
    return run;
  }
}
