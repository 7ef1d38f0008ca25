// The gateway as a child process (server/main.ts on a config directory), for tests of what survives a
// real stop: SIGTERM (the clean stop of server/signals.ts) or SIGKILL (a crash). The child prints its
// ready line (EDGE_READY_FD=stdout) with the HTTP port the kernel chose.
import type { Subprocess } from "bun";
import { join } from "node:path";
import { waitFor } from "./index.ts";

export interface GatewayProcess {
  url: string;
  /** stdout so far (JSON log lines at EDGE_LOG_LEVEL, and the ready line) */
  output(): string;
  /** sends the signal and waits for the exit; returns the exit code (null after a kill by signal) */
  stop(signal: "SIGTERM" | "SIGKILL"): Promise<number | null>;
}

const MAIN = join(import.meta.dir, "..", "..", "server", "main.ts");

export async function spawnGateway(configDir: string, opts: { logLevel?: string; readyTimeoutMs?: number } = {}): Promise<GatewayProcess> {
  const child: Subprocess<"ignore", "pipe", "ignore"> = Bun.spawn([process.execPath, MAIN, "--config", configDir], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
    env: { ...process.env, EDGE_READY_FD: "stdout", EDGE_LOG_LEVEL: opts.logLevel ?? "warn", EDGE_HTTP_PORT: "0" },
  });
  let out = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    // Bun's ReadableStream is async-iterable; the DOM lib types do not say so
    for await (const chunk of child.stdout as unknown as AsyncIterable<Uint8Array>) out += decoder.decode(chunk, { stream: true });
  })();
  const stop = async (signal: "SIGTERM" | "SIGKILL") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const code = await child.exited;
    await reading;
    return child.signalCode ? null : code;
  };
  try {
    const port = await waitFor(() => /\{"ready":true,"http":(\d+)\}/.exec(out)?.[1] ?? (child.exitCode !== null ? "exited" : null), "the gateway's ready line", opts.readyTimeoutMs ?? 30_000);
    if (port === "exited") throw new Error(`the gateway exited with ${child.exitCode} before it was ready: ${out.slice(-500)}`);
    return { url: `http://127.0.0.1:${port}`, output: () => out, stop };
  } catch (e) {
    await stop("SIGKILL");
    throw e;
  }
}
