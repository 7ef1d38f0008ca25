// A command from NATS is executed at most once across a gateway crash: the gateway (a child process)
// records the command, writes the PLC, commits the ack, and is SIGKILLed before it acks the JetStream
// message. JetStream delivers the message again to the restarted gateway, which finds the command in
// its log by id, writes nothing, and publishes the answer from the ack already logged.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { ModbusTcpServer } from "../../../server/demo/modbus-server.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { NatsCluster } from "../../helpers/nats.ts";
import { configFiles, makeKeys, startPlc, token, type Keys } from "../../server/commands-fixture.ts";
import { Cloud, GATEWAY, natsCommandsYaml } from "./commands-fixture.ts";

let nats: NatsCluster;
let nc: NatsConnection;
let cloud: Cloud;
let keys: Keys;
let plc: ModbusTcpServer;
let writes: Map<number, number>;
let dir: ReturnType<typeof tempDir>;
let child: ReturnType<typeof Bun.spawn> | null = null;
let t: TestGateway | null = null;

beforeAll(async () => {
  nats = await NatsCluster.single();
  nc = await nats.connect();
  cloud = new Cloud(nc);
  keys = await makeKeys();
  ({ plc, writes } = await startPlc());
  dir = tempDir();
}, 30_000);

afterAll(async () => {
  child?.kill("SIGKILL");
  await t?.stop();
  await nc?.close();
  await nats?.close();
  await plc?.stop();
  dir?.cleanup();
});

describe("nats commands across a gateway crash", () => {
  it("executes a command once when the gateway is SIGKILLed between committing it and acking the JetStream message", async () => {
    const files = configFiles(dir.path, plc.port, keys, natsCommandsYaml(nats.servers[0]!));
    const proc = Bun.spawn([process.execPath, `${import.meta.dir}/commands-crash-child.ts`], { env: { ...process.env, GATEWAY_FILES: JSON.stringify(files), GATEWAY_DIR: dir.path }, stdout: "pipe", stderr: "inherit" });
    child = proc;
    const out = new Response(proc.stdout).text();
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.consumers.info("EDGE_CMD", `cmd-${GATEWAY}`).catch(() => null)) !== null, "the command consumer", 30_000, 50);

    const id = cloud.nextId("crash");
    await cloud.publish("acme", "line1/sp/temp", { id, value: 321 }, await token(keys, { expiresIn: 600 }));
    await proc.exited;
    expect(await out).toContain("ready");
    expect(proc.signalCode).toBe("SIGKILL");
    expect(writes.get(10)).toBe(1);
    expect(cloud.answersTo(id)).toHaveLength(0);
    expect((await jsm.consumers.info("EDGE_CMD", `cmd-${GATEWAY}`)).num_ack_pending).toBe(1);

    t = await startGateway(files, { keepDir: dir.path });
    const a = await cloud.answerTo(id, 20_000);
    expect(a).toMatchObject({ ok: true, code: "ok" });
    expect(plc.holding[10]).toBe(321);
    expect(writes.get(10)).toBe(1);
    const cmds: string[] = [];
    for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["cmd"] })) if (f.kind === "cmd") cmds.push(f.id);
    expect(cmds).toEqual([a.command!]);
    await waitFor(async () => (await jsm.consumers.info("EDGE_CMD", `cmd-${GATEWAY}`)).num_ack_pending === 0, "the redelivered command acked", 10_000, 50);
    expect(cloud.answersTo(id)).toHaveLength(1);
  }, 60_000);
});
