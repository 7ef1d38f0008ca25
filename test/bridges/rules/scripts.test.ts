// User rules on a real log: triggers, commands through the rule's write list and checkWrite, derived tags,
// faults isolated to their rule, hot reload, refusal of an invalid file with its line, state across restarts.
import { describe, expect, it } from "bun:test";
import { Registry } from "prom-client";
import { Catalog } from "../../../schemas/index.ts";
import { waitFor } from "../../helpers/index.ts";
import { reading, tag, useRulesWorld } from "./rules-fixture.ts";

const catalog = new Catalog([tag({ tag: "Level" }), tag({ tag: "Pump", type: "int16", access: "RW" }), tag({ tag: "Valve", type: "bool", access: "RW" })]);
const world = useRulesWorld(catalog);
const { writeRule, start, events, cmds, dataOf } = world;

const MIRROR = (name: string) => `export const meta = { triggers: ["Level"], sets: ["${name}.Out"] };
export function onMessage(msg) { setTag("${name}.Out", msg.value * 2) }`;

describe("user rules", () => {
  it("stops a rule running while(true){} within its time limit while ingest and another rule keep flowing", async () => {
    writeRule("spin", `export const meta = { triggers: ["Level"], timeLimitMs: 50 };
export function onMessage(msg) { if (msg.value === 3) while (true) {} }`);
    writeRule("mirror", MIRROR("mirror"));
    const registry = new Registry();
    await start({ registry });
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) await world.log.append([reading("Level", i)]);
    await waitFor(async () => (await dataOf("mirror.Out")).length === 10, "10 derived frames from the healthy rule");
    const faults = await waitFor(async () => (await events("rule.fault")).length === 1 && events("rule.fault"), "one fault of the spinning rule");
    expect(faults[0]).toMatchObject({ source: "rule:spin", data: { kind: "timeout" } });
    expect((await dataOf("mirror.Out")).map((f) => f.value)).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    expect((await dataOf("Level")).length).toBe(10);
    expect(performance.now() - t0).toBeLessThan(3000);
    const spin = world.svc!.list().find((r) => r.name === "spin")!;
    expect(spin).toMatchObject({ state: "running", faults: 1, runs: 10 });
    expect(spin.lastError).toContain("timeout");
    const faults_total = (await registry.getSingleMetric("edge_rule_faults_total")!.get()).values;
    expect(faults_total).toEqual([expect.objectContaining({ labels: { rule: "spin", kind: "timeout" }, value: 1 })]);
  });

  it("turns sendCommand into one CmdFrame of origin rule and refuses a tag outside the write list even when the rule subverts its own check", async () => {
    writeRule("ctl", `export const meta = { triggers: ["Level"], writes: ["Pump"] };
export function onMessage(msg) { if (msg.value > 50) sendCommand("Pump", 1); if (msg.value > 90) globalThis.sendCommand = null }`);
    writeRule("rogue", `export const meta = { triggers: ["Level"], writes: ["Pump"] };
export function onMessage(msg) { Set.prototype.has = () => true; sendCommand("Valve", true) }`);
    await start();
    await world.log.append([reading("Level", 10), reading("Level", 60)]);
    await waitFor(async () => (await cmds()).length === 1, "one command");
    await waitFor(async () => (await events("rule.refused")).length === 2, "the rogue rule's two commands refused by the host");
    expect((await events("rule.refused"))[0]).toMatchObject({ source: "rule:rogue", data: { what: "sendCommand", tag: "Valve" } });
    const [cmd] = await cmds();
    expect(cmd).toMatchObject({ tag: "Pump", value: 1, origin: "rule", actor: "rule:ctl", tenant: "default" });
    expect(cmd!.id).toBe(`rule:ctl:${(await dataOf("Level"))[1]!.offset}:0`);
    expect((await cmds()).some((c) => c.tag === "Valve")).toBe(false);
  });

  it("refuses a command that checkWrite refuses, with a rule.refused event", async () => {
    writeRule("range", `export const meta = { triggers: ["Level"], writes: ["Pump"] };
export function onMessage(msg) { sendCommand("Pump", 1e9) }`);
    await start();
    await world.log.append([reading("Level", 1)]);
    const refused = await waitFor(async () => (await events("rule.refused"))[0], "a refusal");
    expect(refused.data).toMatchObject({ what: "sendCommand", tag: "Pump", reason: expect.stringContaining("out_of_range") });
    expect(await cmds()).toEqual([]);
  });

  it("reloads an edited rule file and refuses an invalid edit with its file and line, keeping the running version", async () => {
    writeRule("mirror", MIRROR("mirror"));
    await start();
    await world.log.append([reading("Level", 1)]);
    await waitFor(async () => (await dataOf("mirror.Out")).length === 1, "first version ran");
    writeRule("mirror", MIRROR("mirror").replace("msg.value * 2", "msg.value * 3"));
    await waitFor(() => world.svc!.get("mirror")?.source?.includes("* 3") && world.svc!.list()[0]!.runs === 0, "the edit loaded");
    await world.log.append([reading("Level", 5)]);
    await waitFor(async () => (await dataOf("mirror.Out")).at(-1)?.value === 15, "edited version ran");
    writeRule("mirror", `export const meta = { triggers: ["Level"], sets: ["mirror.Out"] };\n\nexport function onMessage(msg {\n}\n`);
    const rejected = await waitFor(async () => (await events("rule.rejected"))[0], "the refusal");
    expect(rejected.data).toMatchObject({ file: "rules/mirror.js", line: 3 });
    expect(String(rejected.data!.error)).toStartWith("rules/mirror.js:3:");
    await world.log.append([reading("Level", 7)]);
    await waitFor(async () => (await dataOf("mirror.Out")).at(-1)?.value === 21, "the running version still runs");
    expect(world.svc!.list()[0]!.lastError).toContain("rules/mirror.js:3");
  });

  it("refuses a meta that names a tag outside the catalog, with the line of that tag", async () => {
    writeRule("bad", `export const meta = {\n  triggers: ["Level"],\n  writes: ["Nope"],\n};\nexport function onMessage() {}\n`);
    await start();
    const e = world.svc!.list()[0]!;
    expect(e.state).toBe("invalid");
    expect(e.lastError).toBe("rules/bad.js:3: meta.writes[0]: no tag 'Nope' in variables.yml");
  });

  it("refuses a rule that would set a tag variables.yml already produces", async () => {
    writeRule("forge", `export const meta = {\n  triggers: ["Pump"],\n  sets: ["Level"],\n};\nexport function onMessage() {}\n`);
    await start();
    expect(world.svc!.list()[0]!.lastError).toBe("rules/forge.js:3: meta.sets[0]: tag 'Level' is produced by 'plc' (variables.yml): a rule may only set tags outside the catalog");
  });

  it("keeps the rule's state across a restart and disables a rule after repeated faults", async () => {
    writeRule("count", `export const meta = { triggers: ["Level"], sets: ["count.N"] };
export function onMessage(msg) { state.n = (state.n ?? 0) + 1; setTag("count.N", state.n); if (msg.value < 0) throw new Error("negative") }`);
    await start({ faultLimit: { count: 3, windowMs: 60_000 } });
    await world.log.append([reading("Level", 1), reading("Level", 2)]);
    await waitFor(async () => (await dataOf("count.N")).length === 2, "two runs");
    await world.svc!.stop();
    await start({ faultLimit: { count: 3, windowMs: 60_000 } });
    await world.log.append([reading("Level", 3)]);
    await waitFor(async () => (await dataOf("count.N")).at(-1)?.value === 3, "the count goes on from the stored state");
    await world.log.append([reading("Level", -1), reading("Level", -2), reading("Level", -3)]);
    await waitFor(() => world.svc!.list()[0]!.state === "disabled", "disabled after three faults");
    expect((await events("rule.disabled"))[0]?.data?.reason).toContain("3 faults");
    await world.log.append([reading("Level", 4)]);
    await world.svc!.stop();
    await start();
    expect(world.svc!.list()[0]!.state).toBe("disabled"); // the decision is in the log
    await world.svc!.setEnabled("count", true, "tester");
    await world.log.append([reading("Level", 5)]);
    await waitFor(async () => (await dataOf("count.N")).length === 4, "runs again");
    // n was 6 after the faulting runs (their state changes stay, their outputs do not); Level 4 came while disabled
    expect((await dataOf("count.N")).map((f) => f.value)).toEqual([1, 2, 3, 7]);
    expect(world.svc!.list()[0]!.state).toBe("running");
  });

  it("runs a timer rule and commits its outputs", async () => {
    writeRule("tick", `export const meta = { everyMs: 100, sets: ["tick.N"] };
export function onTimer(now) { state.n = (state.n ?? 0) + 1; setTag("tick.N", state.n) }`);
    await start();
    await waitFor(async () => (await dataOf("tick.N")).length >= 3, "three ticks");
    expect((await dataOf("tick.N")).slice(0, 3).map((f) => f.value)).toEqual([1, 2, 3]);
  });
});
