// /readyz tells the truth: 200 only when every component is ok; a driver in Fault or a retrying log
// consumer makes it 503 with the reason; /healthz stays a liveness probe; consumers' metrics and log lines.
import { describe, expect, it } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { Readiness } from "../../schemas/index.ts";
import { consume } from "../../storage/index.ts";
import { startGateway } from "../helpers/gateway.ts";
import { freePort, waitFor } from "../helpers/index.ts";

const sim = {
  "drivers.yml": `drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 20 }\n`,
  "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
};

async function readyz(url: string): Promise<{ http: number; doc: Readiness }> {
  const r = await fetch(`${url}/readyz`);
  const doc = (await r.json()) as Readiness;
  // the document the console reads always has the schema's shape, whatever the verdict
  expect(Value.Errors(Readiness, doc).First()?.message).toBeUndefined();
  return { http: r.status, doc };
}

describe("readiness", () => {
  it("answers /readyz 200 with every component ok while the driver is Active and consumers keep up", async () => {
    const t = await startGateway(sim);
    try {
      await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active" && t.gw.ctx.log.head > 2, "the driver Active");
      const { http, doc } = await waitFor(async () => {
        const r = await readyz(t.url);
        return r.http === 200 && r;
      }, "readiness ok");
      expect(http).toBe(200);
      expect(doc.status).toBe("ok");
      expect(doc.reasons).toEqual([]);
      expect(doc.components.log).toMatchObject({ state: "ok", degraded: false, reason: null, commitsStalled: false });
      expect(doc.components.drivers.drivers).toEqual([expect.objectContaining({ id: "sim", state: "Active" })]);
      expect((await (await fetch(`${t.url}/healthz`)).json()).status).toBe("ok");
    } finally {
      await t.stop();
    }
  });

  it("answers /readyz 503 naming the driver and its last error when the only driver is in Fault, while /healthz stays ok", async () => {
    const port = await freePort(); // nothing listens there: every connect fails
    const t = await startGateway({
      "gateway.yml": "drivers: { backoffBaseMs: 10, backoffMaxMs: 3000, faultAfterCrashes: 2 }",
      "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:${port}", timeoutMs: 200 }\n`,
      "drivers.yml": `drivers:\n  - id: plc\n    type: modbus\n    endpoint: plc\n    config: { intervalMs: 100 }\n`,
      "variables.yml": `tags:\n  - { tag: p/level, driver: plc, type: int16, address: { area: holding, address: 1 } }\n`,
    });
    try {
      await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Fault", "the driver in Fault");
      const { http, doc } = await readyz(t.url);
      expect(http).toBe(503);
      expect(doc.status).toBe("down");
      expect(doc.components.drivers.state).toBe("down");
      expect(doc.reasons).toContainEqual(expect.stringMatching(/^drivers: driver plc is Fault: .+/));
      expect(doc.components.drivers.drivers[0]).toMatchObject({ id: "plc", state: "Fault", lastError: expect.any(String) });
      const live = await fetch(`${t.url}/healthz`);
      expect(live.status).toBe(200);
    } finally {
      await t.stop();
    }
  });

  it("reports a retrying log consumer as degraded (503) with its error, counts and logs the failure once, and is ok again after it recovers", async () => {
    const t = await startGateway({ ...sim, "gateway.yml": "health: { consumerLagSeconds: 30 }" });
    const logged: string[] = [];
    const error = t.gw.ctx.logger.error.bind(t.gw.ctx.logger);
    t.gw.ctx.logger.error = ((obj: unknown, msg?: string) => {
      if (msg) logged.push(msg);
      return error(obj as object, msg);
    }) as typeof t.gw.ctx.logger.error;
    let failures = 1;
    const probe = consume(t.gw.ctx.log, {
      name: "probe",
      from: "head",
      retry: { initialMs: 1500, maxMs: 1500 },
      handler: () => {
        if (failures-- > 0) throw new Error("probe handler failed");
      },
    });
    try {
      const { http, doc } = await waitFor(async () => {
        const r = await readyz(t.url);
        return r.http === 503 && r;
      }, "readiness degraded by the consumer");
      expect(doc.status).toBe("degraded");
      expect(doc.components.consumers.state).toBe("degraded");
      expect(doc.reasons).toContain("consumers: consumer probe is retrying after 1 errors: Error: probe handler failed");
      expect(doc.components.consumers.consumers).toContainEqual(expect.objectContaining({ name: "probe", state: "retrying", errors: 1 }));
      const text = await (await fetch(`${t.url}/metrics`)).text();
      expect(text).toContain('edge_consumer_state{consumer="probe",state="retrying"} 1');
      expect(text).toContain('edge_consumer_errors_total{consumer="probe"} 1');
      expect(text).toMatch(/^edge_consumer_lag\{consumer="probe"\} \d+/m);
      expect(text).toMatch(/^edge_consumer_lag_seconds\{consumer="probe"\} [\d.e-]+/m);
      expect(text).toContain("edge_log_degraded 0");
      expect(logged.filter((m) => m === "log consumer probe failed; retrying")).toHaveLength(1);
      expect(http).toBe(503);
      // the retry succeeds: ok again, with nothing else to say
      await waitFor(async () => (await readyz(t.url)).http === 200, "readiness ok after the retry", 10_000);
      expect(await (await fetch(`${t.url}/metrics`)).text()).toContain('edge_consumer_state{consumer="probe",state="running"} 1');
    } finally {
      await probe.stop();
      await t.stop();
    }
  });
});
