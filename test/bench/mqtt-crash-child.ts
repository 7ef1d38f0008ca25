// The gateway side of the uplink's crash benchmark (mqtt.bench.ts): opens the log at argv[3], drains it
// to the broker at argv[2] with the uplink's default window (64 messages of 500 frames) under cursor
// "crash", storing its cursor argv[4] ms slower than the disk would (0: as fast as it can; a slow or busy
// disk), and prints {"ready":true}. The benchmark SIGKILLs it mid-drain and reads the stored cursor.
import pino from "pino";
import { Registry } from "prom-client";
import { createMqttNorth } from "../../bridges/mqtt-north/index.ts";
import { Catalog } from "../../schemas/catalog.ts";
import { EventLog } from "../../storage/index.ts";
import { slowCursorStores } from "../helpers/faults.ts";

const [url, path, storeDelayMs] = process.argv.slice(2);
if (!url || !path) throw new Error("usage: mqtt-crash-child.ts <broker url> <log path> [store delay ms]");
const log = await EventLog.open({ path, tailFrames: 50_000, maxDelayMs: 2 });
if (Number(storeDelayMs) > 0) slowCursorStores(log, Number(storeDelayMs));
const bridge = createMqttNorth({
  log, catalog: new Catalog(), registry: new Registry(), logger: pino({ level: "silent" }), gatewayId: "crash", configDir: ".",
  section: { enabled: true, url, qos: 1, cursor: "crash", clientId: "bench-crash" },
})!;
await bridge.start();
console.log(JSON.stringify({ ready: true }));
