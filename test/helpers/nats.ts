// Real NATS servers for tests: Debian's nats-server (2.9) with JetStream on free loopback ports, each with
// its own store directory in a temp dir; a single node or a three-node cluster. A node can be killed
// (SIGKILL: a crash) and restarted on the same ports with the same store. Also: reading a stream back
// as the frame offsets it holds, for exactly-once checks. Never a mock: a missing binary throws.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { decode } from "@msgpack/msgpack";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { freePort, tempDir, waitFor } from "./index.ts";
import { Child } from "./process.ts";
import { closeLeftovers } from "./registry.ts";

const NATS_SERVER = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].find((p) => existsSync(p));

export class NatsServerMissingError extends Error {
  override name = "NatsServerMissingError";
  constructor() {
    super("nats-server not found: the NATS tests need Debian's nats-server (apt-get install -y --no-install-recommends nats-server; 'npm test' installs it as root)");
  }
}

export class NatsNode {
  private child: Child | null = null;
  /** what the node printed in its previous runs */
  private earlier = "";

  constructor(
    readonly name: string,
    readonly port: number,
    readonly storeDir: string,
    private readonly extraArgs: string[],
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get isRunning(): boolean {
    return this.child?.isRunning ?? false;
  }

  get log(): string {
    return (this.earlier + (this.child?.output ?? "")).slice(-100_000);
  }

  /** Starts the node (again) with the same ports and store; resolves when it accepts connections. */
  async start(): Promise<void> {
    if (this.isRunning) return;
    if (!NATS_SERVER) throw new NatsServerMissingError();
    const args = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", String(this.port), "-sd", this.storeDir, "-n", this.name, ...this.extraArgs];
    this.earlier = this.log;
    this.child = new Child(`nats-server ${this.name}`, args, { keepChars: 100_000 });
    await this.child.waitForPort(this.port, 15_000, 20);
  }

  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGKILL"): Promise<void> {
    await this.child?.stop(signal);
  }
}

/** One node or a cluster of three, JetStream on, in a temp dir removed by close(). */
export class NatsCluster {
  private constructor(
    readonly nodes: NatsNode[],
    private readonly cleanup: () => void,
  ) {}

  get servers(): string[] {
    return this.nodes.map((n) => n.url);
  }

  node(name: string): NatsNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in ${this.nodes.map((x) => x.name).join(", ")}`);
    return n;
  }

  static async single(): Promise<NatsCluster> {
    await closeLeftovers();
    const tmp = tempDir("edge-nats-");
    const node = new NatsNode("n1", await freePort(), join(tmp.path, "n1"), []);
    const c = new NatsCluster([node], tmp.cleanup);
    await node.start();
    return c;
  }

  /** Three nodes routed to each other (cluster "edge"); JetStream needs a server name per node. */
  static async three(): Promise<NatsCluster> {
    await closeLeftovers();
    const tmp = tempDir("edge-nats-");
    const clientPorts = [await freePort(), await freePort(), await freePort()];
    const routePorts = [await freePort(), await freePort(), await freePort()];
    const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(",");
    const nodes = clientPorts.map((port, i) => {
      const dir = join(tmp.path, `n${i + 1}`);
      mkdirSync(dir, { recursive: true });
      return new NatsNode(`n${i + 1}`, port, dir, ["--cluster_name", "edge", "--cluster", `nats://127.0.0.1:${routePorts[i]}`, "--routes", routes]);
    });
    const c = new NatsCluster(nodes, tmp.cleanup);
    await Promise.all(nodes.map((n) => n.start()));
    return c;
  }

  /** A client connection to any node (reconnecting forever, as the bridge does). */
  connect(): Promise<NatsConnection> {
    return connect({ servers: this.servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  }

  /** Waits until JetStream answers (a cluster elects its meta leader first). */
  async ready(nc: NatsConnection, timeoutMs = 20_000): Promise<JetStreamManager> {
    return await waitFor(async () => {
      const jsm = await jetstreamManager(nc);
      await jsm.getAccountInfo();
      return jsm;
    }, "JetStream ready", timeoutMs, 100);
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop("SIGKILL")));
    this.cleanup();
  }
}

/** A stream read back: every frame offset in stream order, and the messages' ids. */
export interface StreamContents {
  offsets: number[];
  messages: number;
}

/** Reads every message of `stream` (an ordered consumer) and decodes the bridge's batches (msgpack or JSON). */
export async function readStream(nc: NatsConnection, stream: string, timeoutMs = 15_000): Promise<StreamContents> {
  // after a failover the cluster may not answer API requests for a few seconds: ask again until it does
  const jsm = await waitFor(() => jetstreamManager(nc), "the JetStream API", 2 * timeoutMs, 200);
  const info = await waitFor(() => jsm.streams.info(stream), `the info of stream ${stream}`, 2 * timeoutMs, 200);
  const lastSeq = info.state.last_seq;
  const out: StreamContents = { offsets: [], messages: 0 };
  if (info.state.messages === 0) return out;
  // after a failover the first consumer request may time out while the cluster settles: ask again
  const consumer = await waitFor(() => jetstream(nc).consumers.get(stream), `an ordered consumer on ${stream}`, timeoutMs, 200);
  const msgs = await consumer.consume();
  const timer = setTimeout(() => void msgs.stop(), timeoutMs);
  for await (const m of msgs) {
    out.messages++;
    const json = m.headers?.get("Content-Type") === "application/json";
    const body = (json ? JSON.parse(new TextDecoder().decode(m.data)) : decode(m.data, { useBigInt64: true })) as { frames?: { offset: number | bigint }[]; offset?: number | bigint };
    if (body.frames) for (const f of body.frames) out.offsets.push(Number(f.offset));
    else if (body.offset !== undefined) out.offsets.push(Number(body.offset));
    if (m.seq >= lastSeq) break;
  }
  clearTimeout(timer);
  await msgs.close().catch(() => undefined);
  return out;
}

/** "" when offsets are exactly 1..n in order, else what is wrong (first gap, duplicates). */
export function exactlyOnce(offsets: number[], n: number): string {
  const seen = new Map<number, number>();
  for (const o of offsets) seen.set(o, (seen.get(o) ?? 0) + 1);
  const dup = [...seen].filter(([, c]) => c > 1).map(([o]) => o);
  const missing: number[] = [];
  for (let i = 1; i <= n && missing.length < 10; i++) if (!seen.has(i)) missing.push(i);
  const problems: string[] = [];
  if (dup.length) problems.push(`${dup.length} duplicated (first ${dup.slice(0, 10).join(",")})`);
  if (missing.length) problems.push(`missing ${missing.join(",")}`);
  if (seen.size !== n) problems.push(`${seen.size} distinct offsets, expected ${n}`);
  return problems.join("; ");
}
