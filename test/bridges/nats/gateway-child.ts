// Child process of the crash test: opens the log at argv[3], starts the NATS bridge (servers argv[2],
// comma-separated) and ingests 100 frames every 5 ms until it is killed; prints "ready" once the bridge
// runs. With argv[4] = "drain" it ingests nothing and prints "drained <head>" when everything is acked.
import { frames, makeBridge, openLog } from "./harness.ts";

const [servers, path, mode] = process.argv.slice(2);
if (!servers || !path) throw new Error("usage: gateway-child.ts <servers> <log path> [drain]");
const log = await openLog(path);
const bridge = makeBridge(log, servers.split(","));
await bridge.start();
console.log("ready");
if (mode === "drain") {
  while (bridge.publisher.acked < log.head) await Bun.sleep(10);
  console.log(`drained ${log.head}`);
  await bridge.stop();
  await log.close();
  process.exit(0);
}
setInterval(() => void log.append(frames(100)).catch(() => undefined), 5);
