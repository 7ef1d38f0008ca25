// A rule's command across a gateway crash, on a real gateway process and a real Modbus PLC, counting the
// writes at the PLC: SIGKILL while the rule runs on its trigger (its command not yet committed) -> after
// the restart the trigger is run again and the PLC is written once; SIGKILL after the command was
// committed and taken by the device -> the rule does not run again and the PLC is not written again.
// A tag outside the rule's write list is never written.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnGateway } from "../../helpers/gateway-process.ts";
import { waitFor } from "../../helpers/index.ts";
import { startCrashRig, token, type CrashRig } from "../../server/commands-fixture.ts";

let rig: CrashRig;

// On a rising edge of the process value above 100 the rule writes the setpoint (after working for 1.5 s,
// the window in which the first gateway is killed); it also tries a tag outside its list.
const RULE = `export const meta = { triggers: ["line1/pv/temp"], writes: ["line1/sp/temp"], timeLimitMs: 4000 };
export function onMessage(msg) {
  if (msg.value > 100 && !state.high) {
    state.high = true;
    if (msg.value === 150) { const until = Date.now() + 1500; while (Date.now() < until) {} }
    sendCommand("line1/sp/temp", msg.value === 150 ? 42 : 43);
    try { sendCommand("line1/sp/speed", 1) } catch {}
  } else if (msg.value <= 100) state.high = false;
}`;

beforeAll(async () => {
  rig = await startCrashRig();
  mkdirSync(join(rig.cfg, "rules"));
  writeFileSync(join(rig.cfg, "rules", "edge.js"), RULE);
});
afterAll(() => rig?.stop());

/** The gateway as a child process on the test's config; HTTP on a port the kernel chooses. */
const startGateway = () => spawnGateway(rig.cfg, { stderr: "ignore", env: { EDGE_HTTP_PORT: "0" } });

describe("rule commands across a gateway crash", () => {
  it("writes the PLC once when the gateway is killed between a rule's trigger and its command, and never twice after", async () => {
    const auth = { authorization: `Bearer ${await token(rig.keys, { expiresIn: 600, claims: { scope: "read write", tenant: "acme" } })}` };
    const ruleCommands = async (url: string) =>
      ((await (await fetch(`${url}/api/commands?tag=line1/sp/temp`, { headers: auth })).json()) as { actor: string; value: number; status: string }[]).filter((c) => c.actor === "rule:edge");

    // 1: killed while the rule works on its trigger: nothing was committed, the restart runs it again
    const first = await startGateway();
    try {
      rig.plc.holding[20] = 150;
      // the rule's run takes 1.5 s in the rules worker: /readyz showing it busy for 300 ms says the run is
      // under way (sendCommand comes at its end), and the kill lands inside it
      const busyMs = async () => ((await (await fetch(`${first.url}/readyz`)).json()) as { components: { services: { rules: { worker: { busy: { ms: number } | null } } } } }).components.services.rules.worker.busy?.ms ?? 0;
      await waitFor(async () => (await busyMs()) >= 300, "the rule's run under way", 20_000, 5);
      await first.child.stop();
      expect(rig.writes.get(10) ?? 0).toBe(0);
    } finally {
      await first.child.stop();
    }
    const second = await startGateway();
    try {
      await waitFor(() => rig.writes.get(10) === 1, "the rule's command written after the restart", 30_000);
      expect(rig.plc.holding[10]).toBe(42);
      const cmds = await waitFor(async () => {
        const c = await ruleCommands(second.url);
        return c.length === 1 && c[0]!.status === "ok" && c;
      }, "one acknowledged rule command", 10_000);
      expect(cmds[0]).toMatchObject({ value: 42, status: "ok" });

      // 2: killed after the command was committed and taken by the device (its answer held back)
      rig.proxy.hold = true;
      rig.plc.holding[20] = 50;
      await Bun.sleep(400);
      rig.plc.holding[20] = 160;
      await waitFor(() => rig.writes.get(10) === 2, "the device took the second command", 10_000);
      await second.child.stop();
    } finally {
      await second.child.stop();
    }
    rig.proxy.hold = false;
    const third = await startGateway();
    try {
      const cmds = await waitFor(async () => {
        const c = await ruleCommands(third.url);
        return c.length === 2 && c.every((x) => x.status !== "pending") && c;
      }, "both rule commands acknowledged", 30_000);
      expect(cmds.map((c) => c.value).sort()).toEqual([42, 43]);
      await Bun.sleep(500); // a repeated run would have written by now
      expect(rig.writes.get(10)).toBe(2);
      expect(rig.writes.get(11) ?? 0).toBe(0); // outside the rule's write list
    } finally {
      await third.child.stop();
    }
  }, 120_000);
});
