// A command from NATS is executed at most once across a gateway crash: the gateway (a child process)
// records the command, writes the PLC, commits the ack, and is SIGKILLed before it acks the JetStream
// message. JetStream delivers the message again to the restarted gateway, which finds the command in
// its log by id, writes nothing, and publishes the answer from the ack already logged.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { waitFor } from "../../helpers/index.ts";
import { configFiles, token } from "../../server/commands-fixture.ts";
import { GATEWAY, natsCommandsYaml, startFleet, type Fleet } from "./commands-fixture.ts";

let f: Fleet;
let child: ReturnType<typeof Bun.spawn> | null = null;
let t: TestGateway | null = null;

beforeAll(async () => {
  f = await startFleet();
}, 30_000);

afterAll(async () => {
  child?.kill("SIGKILL");
  await t?.stop();
  await f?.close();
});

describe("nats commands across a gateway crash", () => {
  it("executes a command once when the gateway is SIGKILLed between committing it and acking the JetStream message", async () => {
    const files = configFiles(f.dir.path, f.plc.port, f.keys, natsCommandsYaml(f.nats.servers[0]!));
    const proc = Bun.spawn([process.execPath, `${import.meta.dir}/commands-crash-child.ts`], { env: { ...process.env, GATEWAY_FILES: JSON.stringify(files), GATEWAY_DIR: f.dir.path }, stdout: "pipe", stderr: "inherit" });
    child = proc;
    // the command goes out once the child says its driver is Active ("ready"): sent earlier, on a loaded
    // machine it met a driver not running yet and the child never reached the moment it kills itself at
    let out = "";
    const reading = (async () => {
      for await (const chunk of proc.stdout as unknown as AsyncIterable<Uint8Array>) out += new TextDecoder().decode(chunk);
    })();
    await waitFor(() => out.includes("ready") || proc.exitCode !== null, "the child gateway ready (its driver Active)", 40_000, 50);
    expect(out).toContain("ready");
    const jsm = await jetstreamManager(f.nc);
    await waitFor(async () => (await jsm.consumers.info("EDGE_CMD", `cmd-${GATEWAY}`).catch(() => null)) !== null, "the command consumer", 30_000, 50);

    const id = f.cloud.nextId("crash");
    await f.cloud.publish("acme", "line1/sp/temp", { id, value: 321 }, await token(f.keys, { expiresIn: 600 }));
    await proc.exited;
    await reading;
    expect(proc.signalCode).toBe("SIGKILL");
    expect(f.writes.get(10)).toBe(1);
    expect(f.cloud.answersTo(id)).toHaveLength(0);
    expect((await jsm.consumers.info("EDGE_CMD", `cmd-${GATEWAY}`)).num_ack_pending).toBe(1);

    t = await startGateway(files, { keepDir: f.dir.path });
    const a = await f.cloud.answerTo(id, 20_000);
    expect(a).toMatchObject({ ok: true, code: "ok" });
    expect(f.plc.holding[10]).toBe(321);
    expect(f.writes.get(10)).toBe(1);
    const cmds: string[] = [];
    for await (const fr of t.gw.ctx.log.read({ from: 1, kinds: ["cmd"] })) if (fr.kind === "cmd") cmds.push(fr.id);
    expect(cmds).toEqual([a.command!]);
    await waitFor(async () => (await jsm.consumers.info("EDGE_CMD", `cmd-${GATEWAY}`)).num_ack_pending === 0, "the redelivered command acked", 10_000, 50);
    expect(f.cloud.answersTo(id)).toHaveLength(1);
  }, 60_000);
});
