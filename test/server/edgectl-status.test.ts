// `edgectl status`: the readiness document as lines for a terminal.
import { describe, expect, it } from "bun:test";
import { formatReadiness } from "../../server/edgectl.ts";
import type { Readiness } from "../../schemas/health.ts";

const doc = (drivers: { id: string; state: string; lastError: string | null }[]): Readiness =>
  ({
    status: "ok",
    reasons: [],
    gatewayId: "gw",
    checkedAt: "2026-12-02T14:00:00.000Z",
    components: {
      log: { state: "ok", head: 10, queueDepth: 0, degraded: false, reason: null },
      drivers: { state: "ok", reasons: [], drivers: drivers.map((d) => ({ type: "modbus", restarts: 1, errors: 3, ...d })) },
      consumers: { state: "ok", reasons: [], consumers: [] },
      services: {},
    },
  }) as unknown as Readiness;

describe("formatReadiness", () => {
  it("shows a driver's last error while it is not Active, and not beside Active (history, not a problem)", () => {
    const out = formatReadiness(
      doc([
        { id: "sec", state: "Active", lastError: "TLS handshake with 10.0.0.5:802 failed: the server refused our client certificate" },
        { id: "rtu", state: "Backoff", lastError: "/dev/ttyUSB0: no such device" },
      ]),
    );
    const line = (id: string) => out.split("\n").find((l) => l.includes(` ${id} `)) ?? "";
    expect(line("sec")).toMatch(/Active$/);
    expect(line("rtu")).toContain("Backoff  (/dev/ttyUSB0: no such device)");
  });
});
