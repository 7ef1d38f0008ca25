// OPC UA server bridge with 10,000 tags: start time (address space build + listen), and value
// changes per second delivered to one client monitoring all 10k nodes while a source pumps changes
// through the log. Baseline, same run: a bare node-opcua server with 10k variables updated directly.
// The client runs in the same process as the server (as in the tests): both share the CPU.
import { join } from "node:path";
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  DataType,
  OPCUACertificateManager,
  OPCUAClient,
  OPCUAServer,
  TimestampsToReturn,
  Variant,
  type ClientSession,
  type UAVariable,
} from "node-opcua";
import pino from "pino";
import { createOpcuaServer } from "../../bridges/opcua-server/index.ts";
import { Catalog, type DataFrame, type Variable } from "../../schemas/index.ts";
import { CommandBus } from "../../storage/commands.ts";
import { EventLog } from "../../storage/index.ts";
import { freePort, tempDir } from "../helpers/index.ts";
import { report, rssMiB } from "./report.ts";

const N = 10_000;
const PUMP_MS = 8_000;
const dir = tempDir("edge-bench-opcua-");
const tagName = (i: number) => `area${Math.floor(i / 1000)}/unit${Math.floor(i / 100) % 10}/t${i}`;

async function subscribeAll(url: string, nodeIds: string[]): Promise<{ count: () => number; close: () => Promise<void> }> {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: new OPCUACertificateManager({ rootFolder: join(dir.path, "client-pki"), automaticallyAcceptUnknownCertificate: true }),
  });
  await client.connect(url);
  const session: ClientSession = await client.createSession();
  const sub = await session.createSubscription2({ requestedPublishingInterval: 100, requestedMaxKeepAliveCount: 50, requestedLifetimeCount: 500, maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 1 });
  let n = 0;
  const group = ClientMonitoredItemGroup.create(sub, nodeIds.map((nodeId) => ({ nodeId, attributeId: AttributeIds.Value })), { samplingInterval: 0, queueSize: 5, discardOldest: true }, TimestampsToReturn.Source);
  group.on("changed", () => n++);
  await new Promise<void>((resolve, reject) => {
    group.once("initialized", () => resolve());
    group.once("err", (e: unknown) => reject(new Error(String(e))));
  });
  return {
    count: () => n,
    close: async () => {
      await sub.terminate().catch(() => undefined);
      await session.close().catch(() => undefined);
      await client.disconnect();
    },
  };
}

/** Runs `pump` rounds for PUMP_MS after a warm-up; returns changes delivered per second. */
async function measure(count: () => number, pumpRound: (round: number) => Promise<void>): Promise<{ delivered: number; pumped: number }> {
  await new Promise((r) => setTimeout(r, 500));
  const start = count();
  const t0 = performance.now();
  let round = 0;
  while (performance.now() - t0 < PUMP_MS) await pumpRound(++round);
  const pumpedMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 500)); // the last publishes
  const secs = (performance.now() - t0) / 1000;
  return { delivered: (count() - start) / secs, pumped: (round * N) / (pumpedMs / 1000) };
}

async function bridgeRun() {
  const log = await EventLog.open({ path: join(dir.path, "data", "log.duckdb") });
  const tags: Variable[] = Array.from({ length: N }, (_, i) => ({
    tag: tagName(i), driver: "src", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default",
    ...(i % 2 === 0 ? { unit: "degC" } : {}),
  }));
  const frames = (round: number): DataFrame[] => tags.map((t, i) => ({ kind: "data", tag: t.tag, value: round * 1000 + i, ts: Date.now() * 1000, quality: 0, source: "src" }));
  await log.append(frames(0));
  const catalog = new Catalog(tags);
  const plain = new Catalog(tags.map(({ unit: _, ...t }) => t as Variable));
  const commands = new CommandBus(log);
  const logger = pino({ level: "silent" });
  const starts: number[] = [];
  let result = { delivered: 0, pumped: 0 };
  for (const pass of [1, 2, 3]) {
    const port = await freePort();
    const bridge = createOpcuaServer({
      config: { gateway: { opcua: { enabled: true, port, hostname: "127.0.0.1", allowAnonymous: true }, dataDir: join(dir.path, "data"), gatewayId: "bench" } },
      log, catalog: pass === 3 ? plain : catalog, commands, logger,
    });
    const t0 = performance.now();
    await bridge.start();
    starts.push(performance.now() - t0);
    if (pass === 2) {
      const client = await subscribeAll(bridge.endpointUrl, tags.map((t) => `ns=1;s=${t.tag}`));
      result = await measure(client.count, (round) => log.append(frames(round)).then(() => undefined));
      await client.close();
    }
    await bridge.stop();
  }
  await log.close();
  return { firstStartMs: starts[0]!, startMs: starts[1]!, plainStartMs: starts[2]!, ...result };
}

async function baselineRun(pump: boolean) {
  const port = await freePort();
  const t0 = performance.now();
  const server = new OPCUAServer({
    port, hostname: "127.0.0.1", isAuditing: false,
    serverCertificateManager: new OPCUACertificateManager({ rootFolder: join(dir.path, "baseline-pki"), automaticallyAcceptUnknownCertificate: true }),
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace!; // created by initialize()
  const ns = addressSpace.getOwnNamespace();
  const root = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Tags" });
  const vars: UAVariable[] = [];
  for (let i = 0; i < N; i++) {
    const v = ns.addVariable({ organizedBy: root, browseName: `t${i}`, nodeId: `s=t${i}`, dataType: "Double", minimumSamplingInterval: 0 });
    v.setValueFromSource(new Variant({ dataType: DataType.Double, value: i }));
    vars.push(v);
  }
  await server.start();
  const startMs = performance.now() - t0;
  if (!pump) {
    await server.shutdown(0);
    return { startMs, delivered: 0, pumped: 0 };
  }
  const client = await subscribeAll(`opc.tcp://127.0.0.1:${port}`, vars.map((_, i) => `ns=1;s=t${i}`));
  const result = await measure(client.count, async (round) => {
    for (let i = 0; i < N; i++) vars[i]!.setValueFromSource(new Variant({ dataType: DataType.Double, value: round * 1000 + i }));
    await new Promise((r) => setImmediate(r));
  });
  await client.close();
  await server.shutdown(0);
  return { startMs, ...result };
}

// a first, unmeasured start warms the process up (module code, the standard nodeset) so that
// neither side pays for being first
await baselineRun(false);
const base = await baselineRun(true);
const bridge = await bridgeRun();
report("opcua", [
  { metric: "start, first (creates the server certificate), 10k tags", value: bridge.firstStartMs, unit: "ms" },
  { metric: "start, 10k tags, half AnalogItems with units", value: bridge.startMs, unit: "ms", baseline: base.startMs, ratio: bridge.startMs / base.startMs },
  { metric: "start, 10k tags without units", value: bridge.plainStartMs, unit: "ms", baseline: base.startMs, ratio: bridge.plainStartMs / base.startMs },
  { metric: "changes delivered to 1 client, 10k monitored items", value: bridge.delivered, unit: "changes/s", baseline: base.delivered, ratio: bridge.delivered / base.delivered },
  { metric: "changes pumped by the source", value: bridge.pumped, unit: "changes/s", baseline: base.pumped, ratio: bridge.pumped / base.pumped },
  { metric: "rss at the end", value: rssMiB(), unit: "MiB" },
]);
dir.cleanup();
process.exit(0);
