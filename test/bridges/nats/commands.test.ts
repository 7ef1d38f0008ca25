// Commands from the fleet, end to end: a real gateway (NATS bridge with nats.commands wired by
// server/services.ts, executor, Modbus driver) on a real nats-server, and a real Modbus TCP server that
// counts the writes it receives. A command published on the gateway's subject is written once and
// answered on the ack subject with its code; expired, unauthorised and foreign commands are refused.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { jetstreamManager } from "@nats-io/jetstream";
import type { CmdFrame, Logged } from "../../../schemas/frames.ts";
import { provisionCommand } from "../../../bridges/nats/index.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { waitFor } from "../../helpers/index.ts";
import { configFiles, HoldingProxy, token, unsignedToken } from "../../server/commands-fixture.ts";
import { GATEWAY, natsCommandsYaml, startFleet, type Fleet } from "./commands-fixture.ts";

let f: Fleet;
let t: TestGateway;
/** between the gateway and the PLC: holds the answers to writes while `hold` (a write whose outcome is unknown) */
let proxy: HoldingProxy;

beforeAll(async () => {
  f = await startFleet();
  proxy = new HoldingProxy(f.plc.port);
  await proxy.start();
  t = await startGateway(configFiles(f.dir.path, proxy.port, f.keys, natsCommandsYaml(f.nats.servers[0]!), 1000), { keepDir: f.dir.path });
  await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver to be Active", 20_000);
  // the consumer exists once the bridge provisioned it; commands published after that are delivered
  const jsm = await jetstreamManager(f.nc);
  await waitFor(async () => (await jsm.consumers.info("EDGE_CMD", `cmd-${GATEWAY}`).catch(() => null)) !== null, "the command consumer", 15_000, 50);
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await proxy?.stop();
  await f?.close();
});

async function commandFrame(id: string): Promise<Logged<CmdFrame>[]> {
  const out: Logged<CmdFrame>[] = [];
  for await (const fr of t.gw.ctx.log.read({ from: 1, kinds: ["cmd"] })) if (fr.kind === "cmd" && fr.id === id) out.push(fr as Logged<CmdFrame>);
  return out;
}

describe("nats commands", () => {
  it("writes a command published on the gateway's subject to the PLC once, records it with origin nats and publishes its ok ack", async () => {
    const a = await f.cloud.send("acme", "line1/sp/temp", { value: 42 }, await token(f.keys));
    expect(a).toMatchObject({ ok: true, status: "ok", code: "ok" });
    expect(f.plc.holding[10]).toBe(42);
    expect(f.writes.get(10)).toBe(1);
    const [cmd, ...more] = await commandFrame(a.command!);
    expect(more).toHaveLength(0);
    expect(cmd).toMatchObject({ origin: "nats", actor: "nats:alice", tenant: "acme", tag: "line1/sp/temp", value: 42 });
    // answered means acked: nothing waits for redelivery
    const info = await (await jetstreamManager(f.nc)).consumers.info("EDGE_CMD", `cmd-${GATEWAY}`);
    await waitFor(async () => (await (await jetstreamManager(f.nc)).consumers.info("EDGE_CMD", `cmd-${GATEWAY}`)).num_ack_pending === 0, "no command awaiting its JetStream ack", 5000, 50);
    expect(info.num_pending).toBe(0);
  }, 30_000);

  it("answers the same command id published twice with the first command's result and writes the PLC once", async () => {
    const before = f.writes.get(11) ?? 0;
    const id = f.cloud.nextId("dup");
    const jwt = await token(f.keys);
    const first = await f.cloud.send("acme", "line1/sp/speed", { id, value: 7 }, jwt);
    await f.cloud.publish("acme", "line1/sp/speed", { id, value: 7 }, jwt);
    await waitFor(() => f.cloud.answersTo(id).length >= 2, "the second answer", 10_000, 20);
    expect(f.cloud.answersTo(id)[1]).toMatchObject({ code: "ok", command: first.command });
    expect((f.writes.get(11) ?? 0) - before).toBe(1);
  }, 30_000);

  it("records a command already past its life and answers expired, never writing it", async () => {
    const before = f.writes.get(10) ?? 0;
    const a = await f.cloud.send("acme", "line1/sp/temp", { value: 99, ts: Date.now() - 120_000, ttlMs: 10_000 }, await token(f.keys));
    expect(a).toMatchObject({ ok: false, code: "expired" });
    expect(f.writes.get(10) ?? 0).toBe(before);
  }, 30_000);

  it("refuses a command without a token, with an unsigned token, or with another tenant's token, writing nothing", async () => {
    const before = f.writes.get(10) ?? 0;
    expect(await f.cloud.send("acme", "line1/sp/temp", { value: 5 })).toMatchObject({ ok: false, status: "refused", code: "unauthorized" });
    expect(await f.cloud.send("acme", "line1/sp/temp", { value: 5 }, unsignedToken())).toMatchObject({ ok: false, code: "unauthorized" });
    expect(await f.cloud.send("acme", "line1/sp/temp", { value: 5 }, await token(f.keys, { claims: { tenant: "globex" } }))).toMatchObject({ ok: false, code: "forbidden" });
    expect(await f.cloud.send("acme", "line1/sp/temp", { value: 5 }, await token(f.keys, { claims: { scope: "read" } }))).toMatchObject({ ok: false, code: "forbidden" });
    expect(f.writes.get(10) ?? 0).toBe(before);
  }, 30_000);

  it("refuses a tag of another tenant as unknown, a value out of range and a command without id, naming why", async () => {
    expect(await f.cloud.send("acme", "other/sp", { value: 1 }, await token(f.keys))).toMatchObject({ code: "refused_unknown_tag" });
    expect(await f.cloud.send("acme", "line1/sp/temp", { value: 900 }, await token(f.keys))).toMatchObject({ code: "refused_out_of_range" });
    await f.cloud.publish("acme", "line1/sp/temp", { value: 1 }, await token(f.keys));
    const noId = await waitFor(() => f.cloud.answers.find((a) => a.body.id === null && a.body.error?.includes("id: required"))?.body, "the refusal of a command without id", 10_000, 20);
    expect(noId.code).toBe("invalid_payload");
  }, 30_000);

  it("counts a driver's timeout_outcome_unknown ack under result timeout in edge_nats_commands_total, not error", async () => {
    const counted = async () => {
      const m = await t.gw.ctx.metrics.registry.getSingleMetric("edge_nats_commands_total")?.get();
      return Object.fromEntries((m?.values ?? []).map((v) => [v.labels.result, v.value]));
    };
    const before = await counted();
    proxy.hold = true;
    try {
      const a = await f.cloud.send("acme", "line1/sp/ratio", { value: 1.5 }, await token(f.keys));
      expect(a).toMatchObject({ ok: false, code: "timeout_outcome_unknown" });
    } finally {
      proxy.hold = false;
    }
    const after = await counted();
    expect((after.timeout ?? 0) - (before.timeout ?? 0)).toBe(1);
    expect(after.error ?? 0).toBe(before.error ?? 0);
  }, 30_000);

  it("provisions the command stream and consumer idempotently with edgectl nats provision", async () => {
    const section = { enabled: true, servers: f.nats.servers, streamConfig: { duplicateWindowSec: 600 }, commands: { enabled: true, ackWaitMs: 1500 } };
    const out = await provisionCommand(section, "gateway.yml", GATEWAY);
    expect(out).toContain(`unchanged: command consumer cmd-${GATEWAY} on edge-cmd.*.${GATEWAY}.cmd.>`);
    expect(out).toContain("unchanged: command stream EDGE_CMD");
    const other = await provisionCommand(section, "gateway.yml", "gw-new");
    expect(other).toContain("created: command consumer cmd-gw-new");
  }, 30_000);
});
