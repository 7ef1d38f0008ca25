// A plant OPC UA server (node-opcua) in its own process, so that a test can hang it (SIGSTOP), let it
// go on (SIGCONT) or kill it. Usage: bun opcua-server-process.ts <port> <count> [createStall
// afterCreateStall [subscriptionStall]]: the stalls model a server short of CPU (a loaded machine, a large
// subscription): at each CreateMonitoredItems request the server stops (the process stops itself and a
// `sleep` continues it: no CPU burnt) createStall ms before the answer, and afterCreateStall ms after
// the answer is sent (so no publish, keep-alive or other answer goes out meanwhile); "hang" instead of
// a number stops it for good (a server hung there). subscriptionStall does the same at each
// CreateSubscription request, before the answer. It serves, in
// namespace 1: T0..T<count-1> (Double), Big (UInt32 4294967295), Small (UInt32 5), Ratio (Double 0.5),
// Hidden (Double, not readable), ReadOnly (Double), Setpoint (Double, writable), Weight (Float,
// writable); it prints "ready" on stdout once it listens.
import { DataType, OPCUAServer, Variant } from "node-opcua";

const port = Number(process.argv[2]);
const count = Number(process.argv[3] ?? 100);
const createStall = process.argv[4] ?? "0";
const afterCreateStall = process.argv[5] ?? "0";
const subscriptionStall = process.argv[6] ?? "0";

const server = new OPCUAServer({ port, hostname: "127.0.0.1", resourcePath: "/UA/plant", allowAnonymous: true, isAuditing: false });
await server.initialize();
const addressSpace = server.engine.addressSpace!; // created by initialize()
const ns = addressSpace.getOwnNamespace();

function add(name: string, dataType: DataType, value: unknown, access: "" | "CurrentRead" | "CurrentRead | CurrentWrite" = "CurrentRead"): void {
  const v = ns.addVariable({
    organizedBy: addressSpace.rootFolder.objects,
    browseName: name,
    nodeId: `s=${name}`,
    dataType,
    accessLevel: access,
    userAccessLevel: access,
    minimumSamplingInterval: 0,
  });
  v.setValueFromSource(new Variant({ dataType, value }));
}

for (let i = 0; i < count; i++) add(`T${i}`, DataType.Double, i + 0.5);
add("Big", DataType.UInt32, 4294967295);
add("Small", DataType.UInt32, 5);
add("Ratio", DataType.Double, 0.5);
add("Hidden", DataType.Double, 1, "");
add("ReadOnly", DataType.Double, 2);
add("Setpoint", DataType.Double, 0, "CurrentRead | CurrentWrite");
add("Weight", DataType.Float, 0, "CurrentRead | CurrentWrite");
/** Stops this process for `ms` (a process that gets no CPU), or for good with "hang". */
function stall(ms: string): void {
  if (ms === "0") return;
  if (ms !== "hang") Bun.spawn(["sh", "-c", `sleep ${Number(ms) / 1000}; kill -CONT ${process.pid}`], { stdio: ["ignore", "ignore", "ignore"] });
  process.kill(process.pid, "SIGSTOP");
}

if (createStall !== "0" || afterCreateStall !== "0") {
  // node-opcua dispatches each request to this[`_on_${request name}`]
  type Handler = (message: unknown, channel: { send_response(...args: unknown[]): unknown }) => void;
  const s = server as unknown as { _on_CreateMonitoredItemsRequest: Handler };
  const create = s._on_CreateMonitoredItemsRequest.bind(server);
  s._on_CreateMonitoredItemsRequest = (message, channel) => {
    stall(createStall);
    const send = channel.send_response.bind(channel);
    const stalling = Object.create(channel) as typeof channel;
    stalling.send_response = (...args) => {
      const r = send(...args);
      // the answer is written (synchronously to the socket): nothing else goes out before the stall
      stall(afterCreateStall);
      return r;
    };
    create(message, stalling);
  };
}

if (subscriptionStall !== "0") {
  type Handler = (message: unknown, channel: unknown) => void;
  const s = server as unknown as { _on_CreateSubscriptionRequest: Handler };
  const create = s._on_CreateSubscriptionRequest.bind(server);
  s._on_CreateSubscriptionRequest = (message, channel) => {
    stall(subscriptionStall);
    create(message, channel);
  };
}

await server.start();
process.stdout.write("ready\n");
process.on("SIGTERM", () => void server.shutdown(0).then(() => process.exit(0)));
