// A plant OPC UA server (node-opcua) in its own process, so that a test can hang it (SIGSTOP), let it
// go on (SIGCONT) or kill it. Usage: bun opcua-server-process.ts <port> <count>. It serves, in
// namespace 1: T0..T<count-1> (Double), Big (UInt32 4294967295), Small (UInt32 5), Ratio (Double 0.5),
// Hidden (Double, not readable), ReadOnly (Double), Setpoint (Double, writable), Weight (Float,
// writable); it prints "ready" on stdout once it listens.
import { DataType, OPCUAServer, Variant } from "node-opcua";

const port = Number(process.argv[2]);
const count = Number(process.argv[3] ?? 100);

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
await server.start();
process.stdout.write("ready\n");
process.on("SIGTERM", () => void server.shutdown(0).then(() => process.exit(0)));
