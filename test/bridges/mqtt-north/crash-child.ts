// A gateway's uplink in a child process for crash-resend.test.ts: opens the log at argv[3] (the test wrote
// a backlog into it), publishes it to the broker at argv[2] with the window given as JSON in argv[4]
// (cursor "crash"), storing its cursor `argv[5]` ms slower than the disk would (a slow or busy disk).
// The test SIGKILLs it mid-drain.
import pino from "pino";
import { Registry } from "prom-client";
import { createMqttNorth } from "../../../bridges/mqtt-north/index.ts";
import { Catalog } from "../../../schemas/catalog.ts";
import { EventLog } from "../../../storage/index.ts";
import { slowCursorStores } from "../../helpers/faults.ts";

const [url, path, window, storeDelayMs] = process.argv.slice(2);
if (!url || !path || !window) throw new Error("usage: crash-child.ts <broker url> <log path> <window json> [store delay ms]");
const log = await EventLog.open({ path, tailFrames: 10_000, maxDelayMs: 2 });
if (Number(storeDelayMs) > 0) slowCursorStores(log, Number(storeDelayMs));
const bridge = createMqttNorth({
  log, catalog: new Catalog(), registry: new Registry(), logger: pino({ level: "warn" }), gatewayId: "crash", configDir: ".",
  section: { enabled: true, url, qos: 1, cursor: "crash", clientId: "edge-crash", ...(JSON.parse(window) as object) },
})!;
await bridge.start();
console.log(JSON.stringify({ ready: true }));
