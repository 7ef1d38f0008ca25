// A mapping edit of variables.yml applies live through the reload path (server/reload.ts -> manager
// remap) without restarting the driver or losing a frame; an invalid edit changes nothing. Derived tags
// are computed in the running gateway (services.ts wires the consumer).
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DataFrame, Logged } from "../../schemas/index.ts";
import { reloadConfig } from "../../server/reload.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";

setDefaultTimeout(30_000);

const variables = (expr: string) =>
  [
    "tags:",
    "  - { tag: c, driver: sim, type: float64 }",
    `  - { tag: m, driver: sim, type: float64, expr: "${expr}" }`,
    `  - { tag: d, type: float64, derived: { expr: "c + 1000" } }`,
  ].join("\n") + "\n";

let t: TestGateway;
beforeAll(async () => {
  t = await startGateway({
    "gateway.yml": "watchConfig: false",
    "endpoints.yml": "endpoints: {}\n",
    // counters: both tags read n (the poll number) at every poll, so a lost poll is a gap in c
    "drivers.yml": "drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 5, signals: { c: { shape: counter }, m: { shape: counter } } } }\n",
    "variables.yml": variables("raw * 2"),
  });
});
afterAll(async () => {
  await t?.stop();
});

const latest = (tag: string) => t.gw.ctx.log.latest().get(tag);
async function framesOf(tag: string): Promise<Logged<DataFrame>[]> {
  const out: Logged<DataFrame>[] = [];
  for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === tag) out.push(f as Logged<DataFrame>);
  return out;
}
const editVariables = (text: string) => writeFileSync(join(t.dir, "config", "variables.yml"), text);

describe("mapping edits on a running gateway", () => {
  it("computes derived tags from the polled ones", async () => {
    const d = await waitFor(() => latest("d"), "a frame of d", 10_000);
    expect(d.source).toBe("derived");
    // d was computed from a reading of c logged before it (c moves on every 5 ms)
    const c = (await framesOf("c")).filter((f) => f.offset < d.offset).map((f) => f.value);
    expect(c).toContain((d.value as number) - 1000);
  });

  it("applies a valid expression edit without restarting the driver and without losing a frame", async () => {
    await waitFor(() => (latest("c")?.value as number) > 5, "polling", 10_000);
    editVariables(variables("raw * 3"));
    const r = await reloadConfig(t.gw.ctx);
    expect(r).toMatchObject({ ok: true, driversRestarted: [], driversAdded: [], driversRemoved: [] });
    // m follows the new expression: m = 3 x its counter (= c's counter, same poll)
    await waitFor(() => {
      const m = latest("m");
      return m && (m.value as number) % 3 === 0 && (m.value as number) / 3 > (latest("c")!.value as number) - 5;
    }, "m = raw * 3", 10_000);
    const before = (latest("c")!.value as number) + 20;
    await waitFor(() => (latest("c")!.value as number) > before, "polling on", 10_000);
    // every poll of c is in the log, before, across and after the reload: no gap, no Bad frame
    const c = await framesOf("c");
    const values = c.map((f) => f.value as number);
    expect(values.every((v, i) => i === 0 || v === values[i - 1]! + 1)).toBe(true);
    expect(c.every((f) => f.quality === 0)).toBe(true);
  });

  it("refuses an invalid edit with the place and changes nothing", async () => {
    editVariables(variables("raw * (3"));
    const r = await reloadConfig(t.gw.ctx);
    expect(r.ok).toBe(false);
    expect(r.error).toContain("tags[1].expr");
    expect(r.error).toContain("column 9: expected ')'");
    const head = t.gw.ctx.log.head;
    await waitFor(() => latest("m")!.offset > head && latest("c")!.offset > head, "polling on", 10_000);
    expect((latest("m")!.value as number) % 3).toBe(0);
    expect(t.gw.ctx.catalog.get("m")!.expr).toBe("raw * 3");
  });
});
