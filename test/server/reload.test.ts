// Hot reload of the configuration: a good edit applies live, a bad edit is refused and the running config stays.
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { reloadConfig } from "../../server/reload.ts";
import { startGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";

const drivers = `drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 20 }\n`;
const vars = (tags: string[]) => `tags:\n${tags.map((t) => `  - { tag: ${t}, driver: sim, type: float64 }`).join("\n")}\n`;

describe("config reload", () => {
  it("adds a tag to the catalog and restarts only the changed driver when variables.yml changes", async () => {
    const t = await startGateway({ "drivers.yml": drivers, "variables.yml": vars(["a/one"]) });
    try {
      const changes: number[] = [];
      t.gw.ctx.catalog.on("change", (all) => changes.push(all.length));
      writeFileSync(join(t.dir, "config", "variables.yml"), vars(["a/one", "a/two"]));
      await waitFor(() => t.gw.ctx.catalog.has("a/two"), "the new tag in the catalog");
      expect(changes.at(-1)).toBe(2);
      await waitFor(() => t.gw.ctx.log.latest().has("a/two"), "a value for the new tag");
      const tags = (await (await fetch(`${t.url}/api/tags`)).json()) as { tag: string }[];
      expect(tags.map((x) => x.tag).sort()).toEqual(["a/one", "a/two"]);
      const events = [];
      for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === "config.reloaded") events.push(f.data);
      expect(events.at(-1)).toMatchObject({ ok: true, driversRestarted: ["sim"], tags: 2 });
    } finally {
      await t.stop();
    }
  });

  it("applies an edit of a tag's description, unit and limits without restarting its driver, so no tag turns Bad", async () => {
    const t = await startGateway({ "drivers.yml": drivers, "variables.yml": vars(["a/one"]), "gateway.yml": "watchConfig: false" });
    try {
      await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "the driver Active");
      const before = t.gw.ctx.log.head;
      writeFileSync(join(t.dir, "config", "variables.yml"), `tags:\n  - { tag: a/one, driver: sim, type: float64, description: "edited", unit: degC, min: 0, max: 10 }\n`);
      const r = await reloadConfig(t.gw.ctx);
      expect(r).toMatchObject({ ok: true, driversRestarted: [] });
      expect(t.gw.ctx.catalog.get("a/one")).toMatchObject({ description: "edited", unit: "degC", max: 10 });
      expect(t.gw.ctx.drivers.status()[0]?.restarts).toBe(0);
      await waitFor(() => t.gw.ctx.log.head > before + 5, "more readings");
      for await (const f of t.gw.ctx.log.read({ from: before + 1, kinds: ["data"] })) expect(f.kind === "data" && f.quality).toBe(0);
      // a change of what the driver reads with (here the type) still restarts it
      writeFileSync(join(t.dir, "config", "variables.yml"), `tags:\n  - { tag: a/one, driver: sim, type: float32 }\n`);
      expect(await reloadConfig(t.gw.ctx)).toMatchObject({ ok: true, driversRestarted: ["sim"] });
    } finally {
      await t.stop();
    }
  });

  it("refuses a bad edit with the file and path, and keeps the running configuration", async () => {
    const t = await startGateway({ "drivers.yml": drivers, "variables.yml": vars(["a/one"]), "gateway.yml": "watchConfig: false" });
    try {
      writeFileSync(join(t.dir, "config", "variables.yml"), `tags:\n  - { tag: a/one, driver: sim, type: float }\n`);
      const r = await reloadConfig(t.gw.ctx);
      expect(r.ok).toBe(false);
      expect(r.error).toContain("variables.yml at tags[0].type");
      expect(t.gw.ctx.catalog.get("a/one")?.type).toBe("float64");
      expect(t.gw.ctx.drivers.status()[0]?.state).not.toBe("Fault");
      const head = t.gw.ctx.log.head;
      await waitFor(() => t.gw.ctx.log.head > head, "frames still flowing");
      // the event is appended without waiting for its commit: wait for it rather than for any commit
      const rejected = await waitFor(async () => {
        const found = [];
        for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === "config.rejected") found.push(f);
        return found.length > 0 && found;
      }, "the config.rejected event");
      expect(rejected.length).toBe(1);
      expect(rejected[0]!.kind === "event" && rejected[0]!.data?.error).toContain("tags[0].type");
    } finally {
      await t.stop();
    }
  });
});
