// Child process of the command crash test: a whole gateway (startGateway with the config files in
// $GATEWAY_FILES, data in $GATEWAY_DIR) that kills itself with SIGKILL right after a NATS command has
// been committed and executed (its AckFrame committed) but before the bridge could answer and ack the
// JetStream message: the append that recorded the command is held until the ack is in the log, then
// the process dies. Prints "ready" once the Modbus driver is Active.
import type { Frame } from "../../../schemas/frames.ts";
import { startGateway } from "../../helpers/gateway.ts";
import { waitFor } from "../../helpers/index.ts";

const files = JSON.parse(process.env.GATEWAY_FILES ?? "{}") as Record<string, string>;
const t = await startGateway(files, { keepDir: process.env.GATEWAY_DIR! });
const log = t.gw.ctx.log;
const append = log.append.bind(log);

async function ackIsLogged(cmd: string, from: number): Promise<boolean> {
  for await (const f of log.read({ from, kinds: ["ack"] })) if (f.kind === "ack" && f.cmd === cmd) return true;
  return false;
}

log.append = (async (frames: readonly Frame[], opts?: Parameters<typeof append>[1]) => {
  const r = await append(frames, opts);
  const cmd = frames.find((f) => f.kind === "cmd" && f.origin === "nats");
  if (cmd?.kind === "cmd") {
    // no ack in time: exit with the reason, so the test fails on it instead of waiting for a kill that never comes
    await waitFor(() => ackIsLogged(cmd.id, 1), "the command's ack in the log", 30_000, 10).catch((e: Error) => {
      console.error(`commands-crash-child: ${e.message}`);
      process.exit(1);
    });
    process.kill(process.pid, "SIGKILL");
  }
  return r;
}) as typeof log.append;

await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver to be Active", 20_000);
console.log("ready");
