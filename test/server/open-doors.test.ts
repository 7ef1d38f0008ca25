// Safe defaults of a whole gateway: HTTP, OPC UA and the Modbus slave listen on loopback unless
// gateway.yml opens them (observed by connecting to this machine's non-loopback address), one warning
// line and one `security.open_door` event per open door, the demo's anonymous OPC UA sessions read-only.
import { afterEach, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { AttributeIds, DataType } from "node-opcua";
import pino from "pino";
import type { EventFrame } from "../../schemas/index.ts";
import { Gateway } from "../../server/gateway.ts";
import { connect as uaConnect } from "../bridges/opcua-server/helpers.ts";
import { freePort, tempDir, waitFor, writeConfig } from "../helpers/index.ts";

const HS_SECRET = "0123456789abcdef0123456789abcdef-open-doors";
const demoDir = join(import.meta.dir, "..", "..", "server", "demo", "config");

interface Started {
  gw: Gateway;
  /** every line the gateway logged, parsed */
  lines: Record<string, unknown>[];
  ports: { http: number; opcua: number; modbus: number };
  stop(): Promise<void>;
}

let current: Started | null = null;
afterEach(async () => {
  await current?.stop();
  current = null;
});

/** A gateway on `gatewayYml` (ports appended), logging into an array through a pino destination. */
async function start(gatewayYml: (p: { opcua: number; modbus: number }) => string, files: Record<string, string> = {}): Promise<Started> {
  const tmp = tempDir("edge-doors-");
  const ports = { opcua: await freePort(), modbus: await freePort() };
  const yml = [`dataDir: ${join(tmp.path, "data")}`, gatewayYml(ports)].join("\n") + "\n";
  writeConfig(join(tmp.path, "config"), { "drivers.yml": "drivers: []\n", "variables.yml": "tags: []\n", ...files, "gateway.yml": yml });
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const gw = await Gateway.start({ configDir: join(tmp.path, "config"), logger });
  current = {
    gw,
    lines,
    ports: { ...ports, http: gw.httpPort },
    async stop() {
      await gw.stop();
      tmp.cleanup();
    },
  };
  return current;
}

/** This machine's first non-loopback IPv4 address, if it has one. */
function outsideAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return null;
}

/** "open" when a TCP connection to host:port is accepted, "refused" otherwise. */
function probe(host: string, port: number): Promise<"open" | "refused"> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port, timeout: 2000 });
    s.once("connect", () => {
      s.destroy();
      resolve("open");
    });
    s.once("error", () => resolve("refused"));
    s.once("timeout", () => {
      s.destroy();
      resolve("refused");
    });
  });
}

const doorWarnings = (lines: Record<string, unknown>[]) => lines.filter((l) => l.level === 40 && String(l.msg).startsWith("open door:"));

async function doorEvents(gw: Gateway, n: number): Promise<EventFrame[]> {
  return waitFor(async () => {
    const found: EventFrame[] = [];
    for await (const f of gw.ctx.log.read({ from: 1, kinds: ["event"] })) if ((f as EventFrame).type === "security.open_door") found.push(f as EventFrame);
    return found.length >= n && found;
  }, `${n} security.open_door events`);
}

const onlyPorts = (p: { opcua: number; modbus: number }) =>
  [`http: { port: 0 }`, `opcua: { port: ${p.opcua}, securityModes: [None], securityPolicies: [None] }`, `modbusSlave: { port: ${p.modbus} }`].join("\n");

describe("default bind address", () => {
  it("listens on 127.0.0.1 only for HTTP, OPC UA and the Modbus slave when gateway.yml names no host", async () => {
    const g = await start(onlyPorts);
    const outside = outsideAddress();
    for (const [name, port] of Object.entries(g.ports)) {
      expect([name, await probe("127.0.0.1", port)]).toEqual([name, "open"]);
      if (outside) expect([name, await probe(outside, port)]).toEqual([name, "refused"]);
    }
    // without a non-loopback address to try, the configured hosts are the evidence
    const gw = g.gw.ctx.config.gateway as Record<string, any>;
    expect([gw.http.host, gw.opcua.host, gw.modbusSlave.host]).toEqual(["127.0.0.1", "127.0.0.1", "127.0.0.1"]);
  }, 30_000);

  it("listens beyond loopback when gateway.yml says host: 0.0.0.0 (so the refusal above is the default's doing)", async () => {
    const outside = outsideAddress();
    if (!outside) return; // nothing beyond loopback to connect to on this machine
    const g = await start((p) =>
      [`http: { host: 0.0.0.0, port: 0 }`, `opcua: { host: 0.0.0.0, port: ${p.opcua}, securityModes: [None], securityPolicies: [None] }`, `modbusSlave: { host: 0.0.0.0, port: ${p.modbus} }`].join("\n"),
    );
    for (const [name, port] of Object.entries(g.ports)) expect([name, await probe(outside, port)]).toEqual([name, "open"]);
  }, 30_000);
});

describe("open-door warnings", () => {
  it("warns once (one line, one event) that reads are open when no auth key is configured, and nothing else by default", async () => {
    const g = await start(onlyPorts);
    const warned = doorWarnings(g.lines);
    expect(warned.map((l) => l.door)).toEqual(["http_reads_open"]);
    expect(String(warned[0]!.msg)).not.toContain("\n");
    const events = await doorEvents(g.gw, 1);
    expect(events.map((e) => e.data?.door)).toEqual(["http_reads_open"]);
  }, 30_000);

  it("warns for every open door: reads without keys, tag names in /metrics, anonymous OPC UA, Modbus slave beyond loopback, Modbus writes without credentials", async () => {
    const g = await start((p) =>
      [
        `http: { port: 0 }`,
        `metrics: { tagLabels: true }`,
        `opcua: { port: ${p.opcua}, allowAnonymous: true, securityModes: [None], securityPolicies: [None] }`,
        `modbusSlave: { host: 0.0.0.0, port: ${p.modbus}, writeAllowlist: [10.0.0.0/8] }`,
      ].join("\n"),
    );
    const doors = ["http_reads_open", "metrics_tag_labels", "opcua_anonymous", "modbus_slave_exposed", "modbus_slave_writes_without_credentials"];
    expect(doorWarnings(g.lines).map((l) => l.door)).toEqual(doors);
    const events = await doorEvents(g.gw, 4);
    expect(events.map((e) => e.data?.door)).toEqual(doors);
    expect(events.find((e) => e.data?.door === "modbus_slave_writes_without_credentials")!.data).toMatchObject({ writeAllowlist: ["10.0.0.0/8"] });
  }, 30_000);

  it("warns about nothing when auth has a key, OPC UA refuses anonymous sessions and the Modbus slave stays on loopback without writes", async () => {
    const g = await start((p) => [`auth: { hs256Secret: "${HS_SECRET}" }`, onlyPorts(p)].join("\n"));
    expect(doorWarnings(g.lines)).toEqual([]);
    expect(g.lines.some((l) => l.msg === "http listening")).toBe(true);
  }, 30_000);
});

describe("the demo config", () => {
  it("keeps loopback, lets an anonymous OPC UA session read and answers BadUserAccessDenied to its write", async () => {
    const plcPort = await freePort();
    const pki = tempDir("edge-doors-pki-");
    const demoYml = readFileSync(join(demoDir, "gateway.yml"), "utf8");
    const g = await start(
      (p) =>
        demoYml
          .replace(/^demo:\n/m, `demo:\n  port: ${plcPort}\n`)
          .replace(/^opcua:\n/m, `opcua:\n  port: ${p.opcua}\n`)
          .replace(/^modbusSlave:\n/m, `modbusSlave:\n  port: ${p.modbus}\n`)
          .replace(/^http:\n/m, "http:\n  port: 0\n"),
      {
        "endpoints.yml": readFileSync(join(demoDir, "endpoints.yml"), "utf8").replace(/127\.0\.0\.1:\$\{EDGE_DEMO_PLC_PORT:-5021\}/, `127.0.0.1:${plcPort}`),
        "drivers.yml": readFileSync(join(demoDir, "drivers.yml"), "utf8"),
        "variables.yml": readFileSync(join(demoDir, "variables.yml"), "utf8"),
      },
    );
    try {
      const gw = g.gw.ctx.config.gateway as Record<string, any>;
      expect([gw.http.host, gw.opcua.host, gw.modbusSlave.host]).toEqual(["127.0.0.1", "127.0.0.1", "127.0.0.1"]);
      await waitFor(() => g.gw.ctx.log.latest().has("line1/boiler/setpoint"), "demo PLC polled", 20_000);
      const ua = await uaConnect(`opc.tcp://127.0.0.1:${g.ports.opcua}/UA/edge`, { pkiDir: pki.path });
      try {
        const nodeId = "ns=1;s=line1/boiler/setpoint";
        expect((await ua.session.read({ nodeId, attributeId: AttributeIds.Value })).statusCode.name).toBe("Good");
        const status = await ua.session.write({ nodeId, attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Float, value: 61 } } });
        expect(status.name).toBe("BadUserAccessDenied");
      } finally {
        await ua.close();
      }
      const doors = doorWarnings(g.lines).map((l) => l.door);
      expect(doors).toContain("opcua_anonymous");
      expect(doors).not.toContain("modbus_slave_writes_without_credentials");
    } finally {
      pki.cleanup();
    }
  }, 60_000);
});
