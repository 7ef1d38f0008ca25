// A rules test's world: a real log in a temporary directory with a rules/ folder (opened before each test,
// closed after, with the RulesService a test started on it), catalog tags and readings, and reads of what
// the rules committed.
import { afterEach, beforeEach } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import type { Catalog, CmdFrame, DataFrame, EventFrame, Frame, Logged, Variable } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { RulesService, type RulesOptions } from "../../../bridges/rules/scripts.ts";
import { tempDir } from "../../helpers/index.ts";

export const tag = (t: Partial<Variable> & { tag: string }): Variable => ({ driver: "plc", type: "float64", access: "R", scale: 1, offset: 0, tenant: "default", address: { table: "holding", address: 0 }, ...t }) as unknown as Variable;
export const reading = (t: string, value: number): DataFrame => ({ kind: "data", tag: t, value, ts: Date.now() * 1000, quality: 0, source: "plc" });
export const logger = pino({ level: "silent" });

export interface RulesWorld {
  /** the temporary directory (config dir: rules/ inside) */
  dir: string;
  log: EventLog;
  svc: RulesService | null;
  writeRule(name: string, text: string): void;
  /** starts a RulesService on the log (short settle and retry times); stopped after the test */
  start(opts?: Partial<RulesOptions>): Promise<RulesService>;
  all(): Promise<Logged<Frame>[]>;
  events(type: string): Promise<Logged<EventFrame>[]>;
  cmds(): Promise<Logged<CmdFrame>[]>;
  dataOf(tag: string): Promise<Logged<DataFrame>[]>;
}

export function useRulesWorld(catalog: Catalog): RulesWorld {
  let tmp: ReturnType<typeof tempDir>;
  const w: RulesWorld = {
    dir: "",
    log: undefined as unknown as EventLog, // set before each test
    svc: null,
    writeRule: (name, text) => writeFileSync(join(w.dir, "rules", `${name}.js`), text),
    async start(opts = {}) {
      w.svc = new RulesService({ log: w.log, catalog, logger, configDir: w.dir, settleMs: 50, retry: { initialMs: 10, maxMs: 50 }, ...opts });
      await w.svc.start();
      return w.svc;
    },
    async all() {
      const out: Logged<Frame>[] = [];
      for await (const page of w.log.pages({ from: 1, to: w.log.head })) out.push(...page);
      return out;
    },
    events: async (type) => (await w.all()).filter((f): f is Logged<EventFrame> => f.kind === "event" && f.type === type),
    cmds: async () => (await w.all()).filter((f): f is Logged<CmdFrame> => f.kind === "cmd"),
    dataOf: async (t) => (await w.all()).filter((f): f is Logged<DataFrame> => f.kind === "data" && f.tag === t),
  };
  beforeEach(async () => {
    tmp = tempDir();
    w.dir = tmp.path;
    mkdirSync(join(w.dir, "rules"));
    w.log = await EventLog.open({ path: join(w.dir, "log.duckdb"), maxDelayMs: 1 });
  });
  afterEach(async () => {
    await w.svc?.stop();
    w.svc = null;
    await w.log.close();
    tmp.cleanup();
  });
  return w;
}
