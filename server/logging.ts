// The gateway's one logger: pretty lines for a person at a terminal (stdout is a TTY), JSON lines with ISO
// timestamps for machines otherwise; EDGE_LOG_FORMAT=json|pretty and EDGE_LOG_LEVEL override. node-opcua's
// own messages (its make_warningLog/make_errorLog/make_debugLog, printed with console.log by default)
// go through the same logger, so that a pipe carries JSON lines only.
import { format } from "node:util";
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";
import { setDebugLogger, setErrorLogger, setWarningLogger } from "node-opcua";

export type LogFormat = "json" | "pretty";

/** EDGE_LOG_FORMAT when set (json | pretty), else pretty on a terminal and JSON anywhere else. */
export function logFormat(env: Record<string, string | undefined> = process.env, isTTY = Boolean(process.stdout.isTTY)): LogFormat {
  const asked = env.EDGE_LOG_FORMAT?.trim().toLowerCase();
  if (asked === "json" || asked === "pretty") return asked;
  return isTTY ? "pretty" : "json";
}

export interface LoggerOptions {
  name?: string;
  level?: string;
  format?: LogFormat;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options = { name: opts.name ?? "edge", level: opts.level ?? process.env.EDGE_LOG_LEVEL ?? "info", timestamp: pino.stdTimeFunctions.isoTime };
  if ((opts.format ?? logFormat()) === "json") return pino(options);
  // in-process and synchronous (no transport worker): lines keep their order with anything else on stdout
  return pino(options, pretty({ colorize: Boolean(process.stdout.isTTY), translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", sync: true }));
}

/** node-opcua's default loggers stop repeating one message after this many; so do these. */
const REPEATS = 100;

/**
 * Routes node-opcua's messages into `logger` (child `component: node-opcua`): errors as error, warnings
 * as warn, debug traces (enabled per file by node-opcua's DEBUG variable) as debug. Process-wide, as
 * node-opcua's loggers are: the last gateway started in a process owns them.
 */
export function routeOpcuaLogs(logger: Logger): void {
  const log = logger.child({ component: "node-opcua" });
  const seen = new Map<string, number>();
  const to = (level: "error" | "warn" | "debug") => (context?: unknown, ...args: unknown[]) => {
    const where = context as { filename?: string; callerline?: number } | undefined;
    const at = where?.filename ? `${where.filename}:${where.callerline ?? 0}` : "";
    const n = (seen.get(at) ?? 0) + 1;
    seen.set(at, n);
    if (n > REPEATS) return;
    log[level]({ at }, n === REPEATS ? `${format(...args)} (repeated ${REPEATS} times; no more from ${at})` : format(...args));
  };
  setErrorLogger(to("error"));
  setWarningLogger(to("warn"));
  setDebugLogger(to("debug"));
}
