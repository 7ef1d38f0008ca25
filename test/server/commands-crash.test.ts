// Exactly-once across a crash: the gateway (a child process) is SIGKILLed while a device write is
// under way and with commands committed but not yet executed; after the restart each command is
// executed at most once (the one under way is acked "outcome unknown", a waiting one runs once, an
// expired one is acked expired and never written). Writes are counted at the Modbus server.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { OUTCOME_UNKNOWN } from "../../drivers/index.ts";
import { spawnGateway } from "../helpers/gateway-process.ts";
import { waitFor } from "../helpers/index.ts";
import { startCrashRig, token, type CrashRig } from "./commands-fixture.ts";

let rig: CrashRig;

beforeAll(async () => {
  rig = await startCrashRig();
});
afterAll(() => rig?.stop());

/** The gateway as a child process on the test's config, once its Modbus driver is Active. */
async function startGateway() {
  const g = await spawnGateway(rig.cfg, { stderr: "ignore", env: { EDGE_HTTP_PORT: "0" } });
  await waitFor(async () => ((await (await fetch(`${g.url}/healthz`)).json()) as { drivers: { state: string }[] }).drivers[0]?.state === "Active", "the driver Active", 30_000);
  return g;
}

describe("command execution across a crash", () => {
  it("never executes a command twice after SIGKILL, and never executes an expired one", async () => {
    const auth = { authorization: `Bearer ${await token(rig.keys, { expiresIn: 600 })}`, "content-type": "application/json" };
    const put = async (url: string, tag: string, body: unknown) => {
      const r = await fetch(`${url}/api/tags/${tag}`, { method: "PUT", headers: auth, body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as { id: string; expiresAt: string } };
    };
    const first = await startGateway();
    try {
      rig.proxy.hold = true;
      // 1: the device takes the write but its answer never comes back before the crash
      const underWay = await put(first.url, "line1/sp/temp", { value: 111 });
      expect(underWay.status).toBe(202);
      await waitFor(() => rig.writes.get(10) === 1, "the device to take the first write", 20_000);
      // 2 and 3: committed, waiting behind it; 3 expires before the restart
      // (the waiting one lives 4 minutes: a restart under load took longer than the default 30 s, and it expired)
      const waiting = await put(first.url, "line1/sp/speed", { value: 222, ttlMs: 240_000 });
      const expiring = await put(first.url, "line1/sp/ratio", { value: 2.5, ttlMs: 500 });
      expect([waiting.status, expiring.status]).toEqual([202, 202]);
      await first.child.stop("SIGKILL");
      rig.proxy.hold = false;
      await waitFor(() => Date.now() > Date.parse(expiring.body.expiresAt) + 100, "the third command's expiry", 10_000);

      const second = await startGateway();
      try {
        const get = async (id: string) => (await (await fetch(`${second.url}/api/commands/${id}`, { headers: auth })).json()) as { status: string; ack: { error?: string } | null };
        const [a, b, c] = await waitFor(async () => {
          const all = await Promise.all([underWay, waiting, expiring].map((r) => get(r.body.id)));
          return all.every((x) => x.status !== "pending") && all;
        }, "acks of all three commands", 30_000);
        expect(a).toMatchObject({ status: "error", ack: { error: OUTCOME_UNKNOWN } });
        expect(b).toMatchObject({ status: "ok" });
        expect(c).toMatchObject({ status: "expired" });
        expect(rig.plc.holding[10]).toBe(111);
        expect(rig.plc.holding[11]).toBe(222);
        expect(rig.plc.holding[12]).toBe(0);
        expect(Object.fromEntries(rig.writes)).toEqual({ 10: 1, 11: 1 });
        // a write after the restart still works end to end
        // (acked within the fixture's ackTimeoutMs of 300 ms it answers 200, later 202: a loaded machine may take longer)
        const after = await put(second.url, "line1/sp/temp", { value: 5 });
        expect([200, 202]).toContain(after.status);
        const acked = await waitFor(async () => {
          const c = await get(after.body.id);
          return c.status !== "pending" && c;
        }, "the ack of the write after the restart", 30_000);
        expect(acked).toMatchObject({ status: "ok" });
        expect(rig.writes.get(10)).toBe(2);
      } finally {
        await second.child.stop("SIGTERM");
      }
    } finally {
      await first.child.stop("SIGKILL");
    }
  }, 120_000);
});
