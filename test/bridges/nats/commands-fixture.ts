// Fixtures of the NATS command tests: a gateway config with a Modbus PLC and nats.commands on, and a
// cloud-side client that publishes commands on a gateway's subject and collects the answers.
import type { NatsConnection } from "@nats-io/transport-node";
import { headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import type { ModbusTcpServer } from "../../../server/demo/modbus-server.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { NatsCluster } from "../../helpers/nats.ts";
import { makeKeys, startPlc, type Keys } from "../../server/commands-fixture.ts";

export const GATEWAY = "gw-7";
export const COMMAND_SUBJECT = (tenant: string, tag: string) => `edge-cmd.${tenant}.${GATEWAY}.cmd.${tag.split("/").join(".")}`;

/** gateway.yml lines: the gateway id and nats with commands (short redelivery so a crash test is quick). */
export function natsCommandsYaml(server: string, over = ""): string {
  return `gatewayId: ${GATEWAY}\nnats: { enabled: true, servers: ["${server}"], retryMinMs: 50, retryMaxMs: 300, ackTimeoutMs: 2000, streamConfig: { provision: true, duplicateWindowSec: 600 }, commands: { enabled: true, ackWaitMs: 1500, timeoutMs: 5000${over} } }`;
}

export type Answer = { id: string | null; command?: string; ok: boolean; status: string; code: string; error?: string; offset?: number };

/** The cloud side: publishes commands into JetStream and collects the answers of every gateway. */
export class Cloud {
  readonly answers: { subject: string; body: Answer }[] = [];
  private n = 0;
  constructor(private readonly nc: NatsConnection) {
    const sub = nc.subscribe("edge-cmd.*.*.ack.>");
    void (async () => {
      for await (const m of sub) this.answers.push({ subject: m.subject, body: m.json<Answer>() });
    })();
  }

  nextId(what = "c"): string {
    return `${what}-${Date.now()}-${++this.n}`;
  }

  /** Publishes a command (acknowledged by the stream); body gets ts = now unless given. */
  async publish(tenant: string, tag: string, body: Record<string, unknown>, token?: string): Promise<void> {
    const h = headers();
    if (token) h.set("Authorization", `Bearer ${token}`);
    await jetstream(this.nc).publish(COMMAND_SUBJECT(tenant, tag), JSON.stringify({ ts: Date.now(), ...body }), { headers: h });
  }

  answersTo(id: string): Answer[] {
    return this.answers.filter((a) => a.body.id === id).map((a) => a.body);
  }

  async answerTo(id: string, timeoutMs = 15_000): Promise<Answer> {
    return await waitFor(() => this.answersTo(id)[0], `the answer to ${id}`, timeoutMs, 20);
  }

  /** Publishes and waits for the answer. */
  async send(tenant: string, tag: string, body: Record<string, unknown>, token?: string): Promise<Answer> {
    const id = (body.id as string | undefined) ?? this.nextId();
    await this.publish(tenant, tag, { id, ...body }, token);
    return await this.answerTo(id);
  }
}

/** Everything outside the gateway: a nats-server, a cloud client, keys, a counting PLC and a temp dir. */
export interface Fleet {
  nats: NatsCluster;
  nc: NatsConnection;
  cloud: Cloud;
  keys: Keys;
  plc: ModbusTcpServer;
  writes: Map<number, number>;
  dir: ReturnType<typeof tempDir>;
  close(): Promise<void>;
}

export async function startFleet(): Promise<Fleet> {
  const nats = await NatsCluster.single();
  const nc = await nats.connect();
  const keys = await makeKeys();
  const { plc, writes } = await startPlc();
  const dir = tempDir();
  return {
    nats, nc, cloud: new Cloud(nc), keys, plc, writes, dir,
    async close() {
      await nc.close();
      await nats.close();
      await plc.stop();
      dir.cleanup();
    },
  };
}
