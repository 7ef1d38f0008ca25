// A Modbus slave on a real event log in a temp dir, with the real CommandBus and a stand-in PLC that
// acks commands from the log with the code a test asks for (the executor's role), plus a modbus-serial
// master on loopback.
import { join } from "node:path";
import ModbusRTU from "modbus-serial";
import pino from "pino";
import { Catalog, nowMicros, parseWithSchema, Quality, VariablesFile, type AckCode, type AckFrame, type CmdFrame, type Logged, type Value } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { CommandBus } from "../../../storage/commands.ts";
import { createModbusSlave, type ModbusSlave } from "../../../bridges/modbus-slave/index.ts";
import { freePort, tempDir } from "../../helpers/index.ts";

export interface SlaveHarness {
  log: EventLog;
  catalog: Catalog;
  bus: CommandBus;
  slave: ModbusSlave;
  port: number;
  /** commands seen by the stand-in PLC, in order */
  commands: Logged<CmdFrame>[];
  /**
   * How the stand-in PLC answers a command (default: ok, and it reports the new value as a reading).
   * The ack's code is `code`, else ok or device_error from `ok`; "silent": no ack at all.
   */
  answer: (cmd: Logged<CmdFrame>) => PlcAnswer | Promise<PlcAnswer>;
  /** appends readings (quality Good unless given) */
  publish(values: Record<string, Value>, quality?: number): Promise<void>;
  master(opts?: { unit?: number; timeoutMs?: number }): Promise<ModbusRTU>;
  stop(): Promise<void>;
}

export type PlcAnswer = { ok: boolean; code?: AckCode; error?: string } | "silent";

export async function startSlave(opts: {
  tags: unknown[];
  slave: Record<string, unknown>;
  /** values in the log before the slave starts (Good unless `initialQuality` names the tag) */
  initial?: Record<string, Value>;
  initialQuality?: Record<string, number>;
}): Promise<SlaveHarness> {
  const tmp = tempDir("edge-mbslave-");
  const log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), maxDelayMs: 2 });
  const catalog = new Catalog(parseWithSchema(VariablesFile, { tags: opts.tags }, "variables.yml").tags);
  const publish = async (values: Record<string, Value>, quality: number = Quality.Good) => {
    const ts = nowMicros();
    await log.append(Object.entries(values).map(([tag, value]) => ({ kind: "data" as const, tag, value, ts, quality, source: "test" })));
  };
  for (const [tag, value] of Object.entries(opts.initial ?? {})) await publish({ [tag]: value }, opts.initialQuality?.[tag]);
  const bus = new CommandBus(log);
  bus.start();
  const port = await freePort();
  const slave = createModbusSlave({
    config: { dir: tmp.path, gateway: { modbusSlave: { enabled: true, host: "127.0.0.1", port, writeAllowlist: ["127.0.0.1"], ...opts.slave } } },
    log,
    catalog,
    commands: bus,
    logger: pino({ level: process.env.EDGE_LOG_LEVEL ?? "silent" }),
  });
  if (!slave) throw new Error("slave disabled");
  const h: SlaveHarness = {
    log,
    catalog,
    bus,
    slave,
    port,
    commands: [],
    answer: () => ({ ok: true }),
    publish,
    async master({ unit = 1, timeoutMs = 5000 } = {}) {
      const m = await connectMaster(port, { unit, timeoutMs });
      masters.push(m);
      return m;
    },
    async stop() {
      for (const m of masters) await closeMaster(m);
      abort.abort();
      await slave.stop();
      await acker;
      await bus.stop();
      await log.close();
      tmp.cleanup();
    },
  };
  const masters: ModbusRTU[] = [];
  // the stand-in PLC: follows cmd frames, acks each one (and reports the value it "wrote")
  const abort = new AbortController();
  const acker = (async () => {
    for await (const page of log.follow({ from: log.head + 1, kinds: ["cmd"], signal: abort.signal })) {
      for (const f of page) {
        const cmd = f as Logged<CmdFrame>;
        h.commands.push(cmd);
        const a = await h.answer(cmd);
        if (a === "silent") continue;
        const ack: AckFrame = { kind: "ack", cmd: cmd.id, tag: cmd.tag, ok: a.ok, status: a.ok ? "ok" : "error", code: a.code ?? (a.ok ? "ok" : "device_error"), error: a.error, ts: nowMicros(), source: "test-plc" };
        if (ack.error === undefined) delete ack.error;
        const frames = a.ok ? [{ kind: "data" as const, tag: cmd.tag, value: cmd.value, ts: nowMicros(), quality: Quality.Good, source: "test-plc" }, ack] : [ack];
        await log.append(frames);
      }
    }
  })();
  await slave.start();
  return h;
}

/** The Modbus exception code of a failed modbus-serial request (undefined for a timeout or a closed port). */
/** A modbus-serial master connected to a slave on loopback. */
export async function connectMaster(port: number, { unit = 1, timeoutMs = 5000 } = {}): Promise<ModbusRTU> {
  const m = new ModbusRTU();
  await m.connectTCP("127.0.0.1", { port });
  m.setID(unit);
  m.setTimeout(timeoutMs);
  return m;
}

export const closeMaster = (m: ModbusRTU | undefined) => new Promise<void>((r) => (m?.isOpen ? m.close(() => r()) : r()));

export async function exceptionOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { modbusCode?: number }).modbusCode ?? -1;
  }
  throw new Error("expected a Modbus exception, the request succeeded");
}
