// The driver contract. Stable: new methods only with defaults; never change a signature.
// A driver turns a device into frames (source), executes commands on it (sink), or both.
import type { AckCode, CmdFrame, DataFrame, EventFrame, Variable } from "../schemas/index.ts";
import type { Endpoint } from "./endpoint.ts";

export const DRIVER_API_VERSION = 1;

export type DriverKind = "source" | "sink" | "bridge";

export interface DriverMeta {
  name: string;
  kind: DriverKind;
  apiVersion: number;
  features: string[];
}

/** What a driver gets at init: its own config (unvalidated), its tags, and who it is. */
export interface DriverInit {
  id: string;
  config: Record<string, unknown>;
  tags: readonly Variable[];
  /** the gateway's data directory, for files a driver keeps (certificates, sessions); absent in bare tests */
  dataDir?: string;
  /**
   * The last event of each tag among `types` that this driver (its id) logged, from the log's hot
   * table: what the log already says, so that a driver logs a lasting condition again only when it
   * changes, not at every start (call it in connect or readLoop, not in init: it reads the log). Absent
   * in bare tests.
   */
  lastEvents?(types: readonly string[]): Promise<ReadonlyMap<string, EventFrame>>;
}

/**
 * Where a driver's frames go. `send` queues frames for the log and returns at once unless the log is
 * above its high-water mark; then it waits until it drains (backpressure): await it in the loop.
 */
export interface FrameSink {
  send(frames: DataFrame[]): Promise<void>;
  /**
   * Like send, but resolves only when the frames are committed (rejects if the commit fails): for
   * sources that acknowledge upstream (an MQTT PUBACK) and must not do so before the log has the frames.
   * `urgent`: commit without the log's group-commit delay (`log.maxDelayMs`), for a source that can
   * receive nothing more until this commit (its window of unacknowledged messages is full): waiting
   * would gather no more of its frames.
   */
  commit(frames: DataFrame[], opts?: { urgent?: boolean }): Promise<void>;
  event(type: string, data?: Record<string, unknown>, tag?: string): void;
  /** true while the log asks producers to pause */
  readonly isPaused: boolean;
  /** a sign of life for the watchdog when a loop legitimately produces nothing */
  heartbeat(): void;
}

/** The result of executing a command on the device. */
export interface WriteResult {
  ok: boolean;
  /** what happened when not ok (schemas/acks.ts); default device_error */
  code?: AckCode;
  error?: string;
}

export interface Driver {
  meta(): DriverMeta;
  /** parse and validate config; no I/O. Throws a DriverConfigError naming the field. */
  init(init: DriverInit): void | Promise<void>;
  /** open the session to the device; endpoints are shared per URL through the pool */
  connect(endpoint: Endpoint | undefined, signal: AbortSignal): Promise<void>;
  /**
   * Produce frames until the signal aborts. Resolving or throwing while not aborted counts as a
   * crash and the manager restarts the driver with backoff. Device errors on a single read should
   * become Bad-quality frames, not exceptions.
   */
  readLoop(tx: FrameSink, signal: AbortSignal): Promise<void>;
  /** execute one command; optional (sinks). Never called for an expired command. */
  write?(cmd: CmdFrame, tag: Variable): Promise<WriteResult>;
  shutdown(): Promise<void>;
}

export type DriverFactory = () => Driver;

export type { EventFrame };
