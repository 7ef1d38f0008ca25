// The gateway end to end in-process: config -> drivers -> log -> HTTP.
import { describe, expect, it } from "bun:test";
import { startGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";

const sim = {
  "drivers.yml": `drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 20 }\n`,
  "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64, unit: degC }\n  - { tag: a/count, driver: sim, type: int32 }\n`,
};

describe("gateway", () => {
  it("serves the tag catalog with the latest committed value of each tag", async () => {
    const t = await startGateway(sim);
    try {
      const tags = await waitFor(async () => {
        const r = (await (await fetch(`${t.url}/api/tags`)).json()) as { tag: string; quality: string; value: unknown; offset: number | null }[];
        return r.every((x) => x.quality === "Good") && r;
      }, "values for every tag");
      expect(tags.map((x) => x.tag).sort()).toEqual(["a/count", "a/temp"]);
      // the API's value is the frame committed at the offset it names, and no older than the latest at the time
      for (const x of tags) {
        const [f] = await Array.fromAsync(t.gw.ctx.log.read({ from: x.offset!, to: x.offset! }));
        expect(f).toMatchObject({ kind: "data", tag: x.tag, value: x.value });
        expect(t.gw.ctx.log.latest().get(x.tag)!.offset).toBeGreaterThanOrEqual(x.offset!);
      }
    } finally {
      await t.stop();
    }
  });

  it("reports health and Prometheus metrics", async () => {
    const t = await startGateway(sim);
    try {
      await waitFor(() => t.gw.ctx.log.head > 4, "frames");
      const health = (await (await fetch(`${t.url}/healthz`)).json()) as { status: string; drivers: { id: string; state: string }[] };
      expect(health.status).toBe("ok");
      expect(health.drivers).toEqual([expect.objectContaining({ id: "sim", state: "Active" })]);
      const text = await (await fetch(`${t.url}/metrics`)).text();
      expect(text).toMatch(/^edge_frames_appended_total [1-9]/m);
      expect(text).toContain('edge_driver_state{driver="sim",state="Active"} 1');
      expect(text).toContain("edge_log_commit_latency_ms_bucket");
      expect(text).toContain("edge_log_queue_depth");
    } finally {
      await t.stop();
    }
  });

  it("logs and counts the events drivers raise", async () => {
    const t = await startGateway(sim);
    try {
      await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "driver active");
      t.gw.ctx.drivers.emit("event", { kind: "event", type: "probe.bad_payload", source: "sim", ts: 1 });
      const text = await (await fetch(`${t.url}/metrics`)).text();
      expect(text).toContain('edge_driver_events_total{driver="sim",type="driver.state"}');
      expect(text).toContain('edge_driver_events_total{driver="sim",type="probe.bad_payload"} 1');
    } finally {
      await t.stop();
    }
  });
});
