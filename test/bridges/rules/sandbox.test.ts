// The QuickJS sandbox of a rule: limits stop only the faulting message, nothing of the host is reachable,
// and the runtime disposes cleanly after every kind of fault.
import { describe, expect, it } from "bun:test";
import { DEFAULT_LIMITS, RuleLoadError, Sandbox } from "../../../bridges/rules/sandbox.ts";

const limits = { ...DEFAULT_LIMITS, timeLimitMs: 50, memoryBytes: 8 << 20 };
const msgs = (n: number) => Array.from({ length: n }, (_, i) => ({ tag: "T", value: i, quality: 0, ts: i }));

async function sandbox(source: string, grants = { writes: ["W"], sets: ["S"] }): Promise<Sandbox> {
  const sb = new Sandbox("rule.js", source, limits, grants);
  await sb.load();
  return sb;
}

describe("rules sandbox", () => {
  it("stops a message running while(true){} at its time limit and runs the other messages of the batch", async () => {
    const sb = await sandbox(`export function onMessage(m) { if (m.value === 1) while (true) {} log.info("v", m.value) }`);
    const t0 = performance.now();
    const r = await sb.runBatch(msgs(3));
    const took = performance.now() - t0;
    expect(r.faults).toEqual([expect.objectContaining({ kind: "timeout", at: 1, rebuilt: true })]);
    expect(took).toBeLessThan(50 + 500); // the limit plus the rebuild of the runtime
    expect(r.outputs.map((o) => (o.type === "log" ? o.text : ""))).toEqual(["v 0", "v 2"]);
    expect(sb.close()).toBe(true);
  });

  it("gives each message of a batch its own time limit: messages of 40 ms each under a 300 ms limit all run", async () => {
    // together (320 ms) they pass the limit; each one keeps 260 ms of margin for a busy machine's scheduling
    // (a clean-clone run at load ~20 pushed a 40 ms message past 150 ms)
    const sb = new Sandbox("rule.js", `export function onMessage(m) { const until = Date.now() + 40; while (Date.now() < until) {} log.info("done", m.value) }`, { ...limits, timeLimitMs: 300 }, { writes: ["W"], sets: ["S"] });
    await sb.load();
    const r = await sb.runBatch(msgs(8));
    expect(r.faults).toEqual([]);
    expect(r.outputs.length).toBe(8);
    sb.close();
  });

  it("stops a rule allocating without end at its memory ceiling and keeps working afterwards", async () => {
    const sb = await sandbox(`const keep = []; export function onMessage(m) { if (m.value === 0) for (;;) keep.push(new Float64Array(1 << 17)); state.n = (state.n ?? 0) + 1 }`);
    const r = await sb.runBatch(msgs(2));
    expect(r.faults).toEqual([expect.objectContaining({ kind: "memory", at: 0, rebuilt: true })]);
    expect(JSON.parse(r.state)).toEqual({ n: 1 });
    const again = await sb.runBatch(msgs(1).map((m) => ({ ...m, value: 5 })));
    expect(again.faults).toEqual([]);
    expect(JSON.parse(again.state)).toEqual({ n: 2 });
    expect(sb.close()).toBe(true);
  });

  it("stops a rule growing strings without end at its memory ceiling", async () => {
    const sb = await sandbox(`const keep = []; export function onMessage(m) { for (let i = 0; ; i++) keep.push("x".repeat(1 << 16) + i) }`);
    const r = await sb.runBatch(msgs(1));
    expect(r.faults).toEqual([expect.objectContaining({ kind: "memory", at: 0 })]);
    expect(sb.close()).toBe(true);
  });

  it("stops endless recursion at the stack limit", async () => {
    const sb = await sandbox(`function f(n) { return f(n + 1) + 1 } export function onMessage(m) { f(0) }`);
    const r = await sb.runBatch(msgs(1));
    expect(r.faults[0]?.kind).toBe("stack");
    expect(sb.close()).toBe(true);
  });

  it("reaches no process, require, Bun, fetch, timers or imports, also through constructors", async () => {
    const sb = await sandbox(`
      const probes = {
        process: () => typeof process, require: () => typeof require, Bun: () => typeof Bun, fetch: () => typeof fetch,
        setTimeout: () => typeof setTimeout, std: () => typeof std, os: () => typeof os,
        fnThis: () => typeof Function("return this")().process,
        ctorCtor: () => typeof ({}).constructor.constructor("return globalThis")().Bun,
        globalKeys: () => Object.getOwnPropertyNames(globalThis).filter((k) => /^(process|require|Bun|fetch|Deno|std|os|setTimeout|setInterval)$/.test(k)).join(),
      };
      export function onMessage() {
        for (const [k, f] of Object.entries(probes)) log.info(k, f());
      }`);
    const r = await sb.runBatch(msgs(1));
    const lines = r.outputs.map((o) => (o.type === "log" ? o.text : ""));
    expect(lines).toEqual([
      "process undefined", "require undefined", "Bun undefined", "fetch undefined", "setTimeout undefined",
      "std undefined", "os undefined", "fnThis undefined", "ctorCtor undefined", "globalKeys ",
    ]);
    expect(sb.close()).toBe(true);
    const importing = new Sandbox("rules/imp.js", `import { readFileSync } from "node:fs"; export function onMessage() {}`, limits);
    expect(await importing.load().catch((e) => e)).toBeInstanceOf(RuleLoadError);
  });

  it("cannot redirect the host's calls by overwriting its API", async () => {
    const sb = await sandbox(`try { globalThis.__host = null } catch {} try { Object.defineProperty(globalThis, "__host", { value: 1 }) } catch {}
      export function onMessage(m) { sendCommand("W", m.value) }`);
    const r = await sb.runBatch(msgs(1));
    expect(r.outputs).toEqual([{ type: "cmd", i: 0, tag: "W", value: 0 }]);
    sb.close();
  });

  it("refuses sendCommand and setTag on tags outside the rule's lists, as an error of that message", async () => {
    const sb = await sandbox(`export function onMessage(m) { if (m.value === 0) sendCommand("Other", 1); else setTag("S", 2) }`);
    const r = await sb.runBatch(msgs(2));
    expect(r.faults).toEqual([expect.objectContaining({ kind: "error", at: 0, message: expect.stringContaining("'Other' is not in this rule's meta.writes") })]);
    expect(r.outputs).toEqual([{ type: "set", i: 1, tag: "S", value: 2 }]);
    sb.close();
  });

  it("refuses a rule with a syntax error naming its file and line", async () => {
    const sb = new Sandbox("rules/bad.js", "export const meta = {};\n\nexport function onMessage(m {\n}\n", limits);
    const err = await sb.load().catch((e) => e);
    expect(err).toBeInstanceOf(RuleLoadError);
    expect(err.line).toBe(3);
    expect(err.message).toStartWith("rules/bad.js:3:");
  });

  it("carries 64-bit integers as decimal strings and caps log lines at 4096 bytes", async () => {
    const sb = await sandbox(`export function onMessage(m) { log.info("x".repeat(10000)); state.v = m.value; state.b = 2n ** 64n }`);
    const r = await sb.runBatch([{ tag: "T", value: 18446744073709551615n, quality: 0, ts: 1 }]);
    expect(r.outputs[0]).toMatchObject({ type: "log" });
    expect((r.outputs[0] as { text: string }).text.length).toBe(4096);
    expect(JSON.parse(r.state)).toEqual({ v: "18446744073709551615", b: "18446744073709551616" });
    sb.close();
  });

  it("times out a timer run and keeps the rule usable", async () => {
    const sb = await sandbox(`export function onTimer(now) { if (now === 1000) while (true) {} setTag("S", now) }`);
    const first = await sb.runTimer(1000);
    expect(first.faults[0]?.kind).toBe("timeout");
    const second = await sb.runTimer(2000);
    expect(second.outputs).toEqual([{ type: "set", i: -1, tag: "S", value: 2000 }]);
    expect(sb.close()).toBe(true);
  });
});
