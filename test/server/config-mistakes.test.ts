// Each config mistake an integrator makes is refused at start and on reload with the file and the path,
// by the one validated load (server/config-check.ts); the running configuration stays on a refused reload.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../schemas/index.ts";
import { checkConfig } from "../../server/config-check.ts";
import { reloadConfig } from "../../server/reload.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, writeConfig } from "../helpers/index.ts";
import { eventsOf, nextEvent } from "./config-fixture.ts";

const SHORT_SECRET = "only-20-characters!!";
const good: Record<string, string> = {
  "gateway.yml": "watchConfig: false",
  "endpoints.yml": `endpoints:\n  plc1: { url: "tcp://127.0.0.1:9" }\n`,
  "drivers.yml": `drivers:\n  - { id: sim, type: simulator, config: { intervalMs: 50 } }\n`,
  "variables.yml": `tags:\n  - { tag: a/temp, driver: sim, type: float64 }\n`,
};

interface Mistake {
  what: string;
  file: string;
  text: string;
  path: string;
  says: string;
}
const mistakes: Mistake[] = [
  { what: "an unknown URL scheme (tpc://)", file: "endpoints.yml", text: `endpoints:\n  plc1: { url: "tpc://127.0.0.1:502" }\n`, path: "endpoints.plc1.url", says: "unsupported scheme 'tpc'" },
  { what: "a URL without a scheme", file: "endpoints.yml", text: `endpoints:\n  plc1: { url: "127.0.0.1:502" }\n`, path: "endpoints.plc1.url", says: "is not a URL (expected e.g. tcp://" },
  { what: "a tls+tcp:// endpoint whose CA file does not exist", file: "endpoints.yml", text: `endpoints:\n  plc1: { url: "tls+tcp://127.0.0.1:802", tls: { ca: certs/missing-ca.pem } }\n`, path: "endpoints.plc1.tls.ca", says: "cannot read the CA file" },
  { what: "TLS settings on a tcp:// endpoint", file: "endpoints.yml", text: `endpoints:\n  plc1: { url: "tcp://plc:502", tls: { ca: ca.pem } }\n`, path: "endpoints.plc1.tls", says: "TLS settings need a tls+tcp:// or mqtts:// URL, not tcp://" },
  { what: "a serial:// endpoint at a non-standard baud rate", file: "endpoints.yml", text: `endpoints:\n  plc1: { url: "serial:///dev/ttyUSB0?baud=9601" }\n`, path: "endpoints.plc1.url", says: "baud=9601 is not a standard rate" },
  { what: "a serial:// endpoint with an unknown option", file: "endpoints.yml", text: `endpoints:\n  plc1: { url: "serial:///dev/ttyUSB0?bauds=9600" }\n`, path: "endpoints.plc1.url", says: "unknown option 'bauds'" },
  {
    what: "two endpoints on one serial line with other settings",
    file: "endpoints.yml",
    text: `endpoints:\n  u1: { url: "serial:///dev/ttyUSB0?baud=19200" }\n  u2: { url: "serial:///dev/ttyUSB0?baud=9600" }\n`,
    path: "endpoints.u2.url",
    says: "the serial line /dev/ttyUSB0 is also endpoint 'u1', with other settings (baud=19200 parity=even data=8 stop=1 silence=2.005 ms there, baud=9600 parity=even data=8 stop=1 silence=4.01 ms here)",
  },
  {
    what: "two endpoints on one RTU-over-TCP line with another silence",
    file: "endpoints.yml",
    text: `endpoints:\n  u1: { url: "rtu+tcp://10.0.0.9:4001" }\n  u2: { url: "rtu+tcp://10.0.0.9:4001?silence=0" }\n`,
    path: "endpoints.u2.url",
    says: "the RTU line at 10.0.0.9:4001 is also endpoint 'u1', with other settings (silence=2.005 ms there, silence=0 ms here)",
  },
  { what: "an unknown driver type", file: "drivers.yml", text: `drivers:\n  - { id: sim, type: modbuss }\n`, path: "drivers[0].type", says: "unknown driver type 'modbuss' (known: simulator, modbus" },
  { what: "a bad driver config block", file: "drivers.yml", text: `drivers:\n  - { id: sim, type: simulator, config: { intervalMs: fast } }\n`, path: "drivers[0].config.intervalMs", says: "Expected" },
  { what: "a short hs256Secret", file: "gateway.yml", text: `watchConfig: false\nauth: { hs256Secret: "${SHORT_SECRET}" }`, path: "auth.hs256Secret", says: "string length greater or equal to 32" },
];

describe("config mistakes refused at start", () => {
  for (const m of mistakes) {
    it(`refuses ${m.what} with ${m.file} and ${m.path}`, async () => {
      const dir = tempDir();
      try {
        const err = await startGateway({ ...good, [m.file]: m.text }, { keepDir: dir.path }).then(
          async (t) => (await t.stop(), null),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ConfigError);
        const e = err as ConfigError;
        expect({ file: e.file, path: e.path }).toEqual({ file: join(dir.path, "config", m.file), path: m.path });
        expect(e.detail).toContain(m.says);
        expect(e.message).not.toContain(SHORT_SECRET);
      } finally {
        dir.cleanup();
      }
    });
  }
});

describe("config mistakes refused on reload", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway(good);
  });
  afterAll(async () => {
    await t?.stop();
  });

  for (const m of mistakes) {
    it(`refuses ${m.what} with config.rejected naming ${m.file} and ${m.path}, and keeps the running config`, async () => {
      const file = join(t.dir, "config", m.file);
      const running = t.gw.ctx.config;
      writeFileSync(file, m.file === "gateway.yml" ? `${m.text}\ndataDir: ${running.gateway.dataDir}\nhttp: { host: 127.0.0.1, port: 0 }\n` : m.text);
      try {
        const before = (await eventsOf(t.gw.ctx.log, "config.rejected")).length;
        const r = await reloadConfig(t.gw.ctx);
        expect(r.ok).toBe(false);
        expect(r.error).toContain(m.says);
        expect(t.gw.ctx.config).toBe(running);
        const event = await nextEvent(t.gw.ctx.log, "config.rejected", before);
        expect(event).toMatchObject({ file, path: m.path });
        expect(JSON.stringify(event)).not.toContain(SHORT_SECRET);
      } finally {
        writeFileSync(file, m.file === "gateway.yml" ? `${good["gateway.yml"]}\ndataDir: ${running.gateway.dataDir}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: false }\nmodbusSlave: { enabled: false }\n` : good[m.file]!);
      }
    });
  }
});

describe("driver config problems", () => {
  it("places a driver's problem with a tag in variables.yml, and never echoes a password's value", async () => {
    const dir = tempDir();
    try {
      const cfg = writeConfig(join(dir.path, "config"), {
        "endpoints.yml": `endpoints:\n  ua: { url: "opc.tcp://127.0.0.1:4840" }\n`,
        "drivers.yml": `drivers:\n  - { id: ua, type: opcua, endpoint: ua }\n  - { id: ua2, type: opcua, endpoint: ua, config: { user: { name: op, password: 12345678 } } }\n`,
        "variables.yml": `tags:\n  - { tag: a/ok, driver: ua2, type: float64, address: { nodeId: "ns=2;s=A" } }\n  - { tag: a/temp, driver: ua, type: float64 }\n`,
      });
      const { config, problems } = await checkConfig(cfg);
      expect(config).toBeUndefined();
      const found = problems.map((p) => ({ file: p.file, path: p.path }));
      expect(found).toContainEqual({ file: join(cfg, "variables.yml"), path: "tags[1].address.nodeId" });
      expect(found).toContainEqual({ file: join(cfg, "drivers.yml"), path: "drivers[1].config.user.password" });
      expect(problems.map((p) => p.message).join("\n")).not.toContain("12345678");
    } finally {
      dir.cleanup();
    }
  });

  it("lists every problem of one driver's config block at its own path, not the first one alone", async () => {
    // found from outside: `unitId: 300, intervalMs: -5` named the unit id only; the next check named the interval
    const dir = tempDir();
    try {
      const cfg = writeConfig(join(dir.path, "config"), {
        "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:502" }\n`,
        "drivers.yml": `drivers:\n  - { id: plc, type: modbus, endpoint: plc, config: { unitId: 300, intervalMs: -5, maxGap: many } }\n`,
        "variables.yml": `tags:\n  - { tag: a, driver: plc, type: uint16, address: { area: holding, address: 0 } }\n`,
      });
      const { problems } = await checkConfig(cfg);
      expect(problems.map((p) => `${p.file.split("/").at(-1)}: ${p.path}`)).toEqual([
        "drivers.yml: drivers[0].config.unitId",
        "drivers.yml: drivers[0].config.intervalMs",
        "drivers.yml: drivers[0].config.maxGap",
      ]);
      expect(problems[0]!.detail).toBe("Expected integer to be less or equal to 255 (got 300)");
      expect(problems[2]!.detail).toContain('(got "many")');
    } finally {
      dir.cleanup();
    }
  });

  it("refuses unit 0 (the broadcast address: a write would reach every slave, unanswered) and 248-255 on an RTU line, at their place, and keeps them over TCP", async () => {
    const dir = tempDir();
    try {
      const files = (url: string) => ({
        "endpoints.yml": `endpoints:\n  line: { url: "${url}" }\n`,
        "drivers.yml": `drivers:\n  - { id: all, type: modbus, endpoint: line, config: { unitId: 0 } }\n  - { id: odd, type: modbus, endpoint: line, config: { unitId: 3 } }\n`,
        "variables.yml": `tags:\n  - { tag: all/r0, driver: all, type: uint16, address: { area: holding, address: 0 } }\n  - { tag: odd/r0, driver: odd, type: uint16, address: { area: holding, address: 0, unitId: 250 } }\n`,
      });
      const rtu = await checkConfig(writeConfig(join(dir.path, "rtu"), files("serial:///dev/ttyUSB0?baud=19200")));
      expect(rtu.problems.map((p) => `${p.file.split("/").at(-1)}: ${p.path}: ${p.detail}`)).toEqual([
        "drivers.yml: drivers[0].config.unitId: unit 0 is the broadcast address of an RTU line: every slave would execute a write and none answers, and no read is ever answered (unit ids 1-247)",
        "variables.yml: tags[1].address.unitId: unit 250 is reserved on an RTU line (unit ids 1-247)",
      ]);
      expect((await checkConfig(writeConfig(join(dir.path, "tcp"), files("tcp://127.0.0.1:502")))).problems).toEqual([]);
      // one line named by two endpoints with the same settings (stop=1 is even parity's default) is fine
      const twice = { ...files("serial:///dev/ttyUSB0"), "endpoints.yml": `endpoints:\n  line: { url: "serial:///dev/ttyUSB0?baud=19200" }\n  again: { url: "serial:///dev/ttyUSB0?parity=even&stop=1" }\n` };
      twice["drivers.yml"] = twice["drivers.yml"].replace("unitId: 0", "unitId: 1").replace("endpoint: line, config: { unitId: 3 }", "endpoint: again, config: { unitId: 3 }");
      twice["variables.yml"] = twice["variables.yml"].replace(", unitId: 250", "");
      expect((await checkConfig(writeConfig(join(dir.path, "twice"), twice))).problems).toEqual([]);
    } finally {
      dir.cleanup();
    }
  });
});
