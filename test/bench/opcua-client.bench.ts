// OPC UA client driver: values per second from a node-opcua server with 10,000 monitored Double
// variables, all changing every pump period, committed into the log through the driver (a gateway on
// loopback; frames counted by the log's head), vs a bare node-opcua client subscription to the same
// nodes with the same intervals, in the same run. Two offered rates: 40k values/s (within what both
// take) and 100k values/s (more than either takes: the capacity). The server runs in a child process
// (this file with `--server <port> <pumpMs>`), so that the pump does not share the measured event loop.
import { join } from "node:path";
import { AttributeIds, ClientMonitoredItemGroup, DataType, OPCUACertificateManager, OPCUAClient, OPCUAServer, TimestampsToReturn, Variant, type UAVariable } from "node-opcua";
import { startGateway } from "../helpers/gateway.ts";
import { freePort, tempDir } from "../helpers/index.ts";
import { report, rssMiB, type BenchRow } from "./report.ts";

const N = 10_000;
const PUMP_PERIODS_MS = [250, 100];
const MEASURE_MS = 8_000;
const PUBLISH_MS = 100;
const QUEUE = 10;
const nodeId = (i: number) => `ns=1;s=v${i}`;

/** The plant: 10k Double variables, every one changed every pumpMs. */
async function serve(port: number, pumpMs: number): Promise<void> {
  const s = new OPCUAServer({ port, hostname: "127.0.0.1", allowAnonymous: true, isAuditing: false, serverCapabilities: { maxMonitoredItemsPerCall: 100_000 } as never });
  await s.initialize();
  const as = s.engine.addressSpace!;
  const ns = as.getOwnNamespace();
  const vars: UAVariable[] = [];
  for (let i = 0; i < N; i++) {
    vars.push(ns.addVariable({ organizedBy: as.rootFolder.objects, browseName: `v${i}`, nodeId: `s=v${i}`, dataType: "Double", minimumSamplingInterval: 0 }));
  }
  await s.start();
  let round = 0;
  setInterval(() => {
    round++;
    for (let i = 0; i < N; i++) vars[i]!.setValueFromSource(new Variant({ dataType: DataType.Double, value: round + i / N }));
  }, pumpMs);
  process.stdout.write(`listening ${port}\n`);
}

async function startServer(pumpMs: number): Promise<{ url: string; stop(): void }> {
  const port = await freePort();
  const child = Bun.spawn([process.execPath, import.meta.path, "--server", String(port), String(pumpMs)], { stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  let out = "";
  while (!out.includes("listening")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the plant server exited before listening");
    out += new TextDecoder().decode(value);
  }
  return { url: `opc.tcp://127.0.0.1:${port}`, stop: () => child.kill() };
}

/** Values per second delivered over MEASURE_MS after `warm` ms. */
async function rate(count: () => number, warmMs = 2000): Promise<number> {
  await Bun.sleep(warmMs);
  const [n0, t0] = [count(), performance.now()];
  await Bun.sleep(MEASURE_MS);
  return ((count() - n0) * 1000) / (performance.now() - t0);
}

async function bare(url: string, pki: string): Promise<number> {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: new OPCUACertificateManager({ rootFolder: pki, automaticallyAcceptUnknownCertificate: true }),
  });
  await client.connect(url);
  const session = await client.createSession();
  const sub = await session.createSubscription2({ requestedPublishingInterval: PUBLISH_MS, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 100, maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 1 });
  let n = 0;
  const items = Array.from({ length: N }, (_, i) => ({ nodeId: nodeId(i), attributeId: AttributeIds.Value }));
  const group = ClientMonitoredItemGroup.create(sub, items, { samplingInterval: 0, queueSize: QUEUE, discardOldest: true }, TimestampsToReturn.Both);
  group.on("changed", () => n++);
  await new Promise<void>((resolve) => group.once("initialized", () => resolve()));
  try {
    return await rate(() => n);
  } finally {
    await sub.terminate().catch(() => undefined);
    await session.close().catch(() => undefined);
    await client.disconnect();
  }
}

async function throughDriver(url: string, pki: string): Promise<{ perSecond: number; rss: number }> {
  const tags = Array.from({ length: N }, (_, i) => `  - { tag: plant/v${i}, driver: ua, type: float64, address: { nodeId: "${nodeId(i)}" } }`);
  const g = await startGateway({
    "gateway.yml": "watchConfig: false\n",
    "endpoints.yml": `endpoints:\n  plant: { url: "${url}", timeoutMs: 5000 }\n`,
    "drivers.yml": `drivers:\n  - { id: ua, type: opcua, endpoint: plant, config: { samplingIntervalMs: 0, publishingIntervalMs: ${PUBLISH_MS}, queueSize: ${QUEUE}, pkiDir: "${pki}" } }\n`,
    "variables.yml": `tags:\n${tags.join("\n")}\n`,
  });
  try {
    const log = g.gw.ctx.log;
    const t0 = performance.now();
    while (log.latest().size < N && performance.now() - t0 < 60_000) await Bun.sleep(100);
    if (log.latest().size < N) throw new Error(`only ${log.latest().size} of ${N} tags logged within 60 s`);
    return { perSecond: await rate(() => log.head, 1000), rss: rssMiB() };
  } finally {
    await g.stop();
  }
}

async function main(): Promise<void> {
  const dir = tempDir("edge-bench-opcua-client-");
  const rows: BenchRow[] = [];
  try {
    const pki = join(dir.path, "pki");
    for (const pumpMs of PUMP_PERIODS_MS) {
      const server = await startServer(pumpMs);
      try {
        const offered = (N * 1000) / pumpMs;
        const driver = await throughDriver(server.url, pki);
        const baseline = await bare(server.url, pki);
        rows.push(
          { metric: `values/s into the log, ${N} items, ${offered / 1000}k/s offered (driver)`, value: driver.perSecond, unit: "values/s", baseline, ratio: driver.perSecond / baseline },
          { metric: `values/s, bare node-opcua subscription, ${offered / 1000}k/s offered`, value: baseline, unit: "values/s" },
          { metric: `rss with the gateway running, ${offered / 1000}k/s offered`, value: driver.rss, unit: "MiB" },
        );
      } finally {
        server.stop();
      }
    }
    report("opcua-client", rows);
  } finally {
    dir.cleanup();
  }
}

if (process.argv[2] === "--server") await serve(Number(process.argv[3]), Number(process.argv[4]));
else {
  await main();
  process.exit(0);
}
