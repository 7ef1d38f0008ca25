// The gateway as a child process (server/main.ts on a config directory), for tests of what survives a
// real stop: SIGTERM (the clean stop of server/signals.ts) or SIGKILL (a crash), and a start again on
// the same data. The child prints its ready line (EDGE_READY_FD=stdout) with the HTTP port the kernel
// chose (EDGE_HTTP_PORT=0). Spawning, output and stopping are the shared Child (process.ts).
import { join } from "node:path";
import { Child, type ChildOptions } from "./process.ts";
import { closeLeftovers } from "./registry.ts";

const MAIN = join(import.meta.dir, "..", "..", "server", "main.ts");

export interface GatewayProcess {
  child: Child;
  /** the HTTP port from the ready line */
  http: number;
  /** http://127.0.0.1:<http> */
  url: string;
  /** stdout so far (JSON log lines at EDGE_LOG_LEVEL, and the ready line), and stderr when piped */
  output(): string;
  /** sends the signal and waits for the exit and the end of the output; the exit code (null after a kill by signal) */
  stop(signal: "SIGTERM" | "SIGKILL"): Promise<number | null>;
}

export interface GatewayProcessOptions extends Omit<ChildOptions, "env"> {
  /** EDGE_LOG_LEVEL (default warn) */
  logLevel?: string;
  /** more environment variables */
  env?: Record<string, string>;
  /** default READY_TIMEOUT_MS */
  readyTimeoutMs?: number;
}

/**
 * How long a gateway child may take to print its ready line: a start is CPU-bound (Bun loads and
 * transpiles the server): measured 1.8-2.3 s at load 6 and 15-16 s at the same load under nice 10; a
 * whole-suite run under nice 10 with two busy loops failed a start at the former bound of 30 s.
 */
export const READY_TIMEOUT_MS = 60_000;

/** Starts `server/main.ts --config <configDir>` and resolves once it printed its ready line (stderr dropped unless asked). */
export async function spawnGateway(configDir: string, opts: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  await closeLeftovers();
  const { logLevel, env, readyTimeoutMs, ...childOpts } = opts;
  const child = new Child("the gateway", [process.execPath, MAIN, "--config", configDir], {
    stderr: "ignore",
    ...childOpts,
    env: { ...process.env, EDGE_LOG_LEVEL: logLevel ?? "warn", EDGE_HTTP_PORT: "0", ...env, EDGE_READY_FD: "stdout" },
  });
  const stop = async (signal: "SIGTERM" | "SIGKILL") => {
    const code = await child.stop(signal);
    await child.outputEnded;
    return code;
  };
  try {
    const http = await child.waitForOutput((out) => {
      const line = /\{"ready":true[^\n]*\}/.exec(out)?.[0];
      return line && (JSON.parse(line) as { http: number }).http;
    }, "its ready line", readyTimeoutMs ?? READY_TIMEOUT_MS);
    return { child, http, url: `http://127.0.0.1:${http}`, output: () => child.output, stop };
  } catch (e) {
    await child.stop("SIGKILL");
    throw e;
  }
}
