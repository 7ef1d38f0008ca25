// Secrets never echoed: secrets planted in the config (valid ones, mistyped ones that are refused,
// broker URLs with user:password@, a driver password of the wrong type) appear neither in the
// gateway's log output nor in the event log that any read token can query, through a start, refused
// reloads and an accepted one. The refusals still name the file and the field.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { gotValue, redactSecrets, REDACTED } from "../../schemas/index.ts";
import { loadConfig } from "../../server/config.ts";
import { Gateway } from "../../server/gateway.ts";
import { reloadConfig } from "../../server/reload.ts";
import { freePort, tempDir, waitFor, writeConfig } from "../helpers/index.ts";
import { token } from "./commands-fixture.ts";

const PLANTED = {
  secret: "planted-valid-secret-0123456789abcdefghij",
  bridgeUrlPw: "plantedBridgeUrlPw",
  bridgePw: "plantedBridgePassword",
  driverUrlPw: "plantedDriverUrlPw",
  driverPw: "plantedDriverPassword",
  shortSecret: "plantedShortTypo",
  typoKeySecret: "planted-typo-key-secret-0123456789abcdef",
  rotated: "planted-rotated-secret-0123456789abcdefgh",
  arrayPw: "plantedArrayPassword",
};

let dir: ReturnType<typeof tempDir>;
let gw: Gateway;
let output = "";
let port = 0;
const cfgDir = () => join(dir.path, "config");

const gatewayYml = (auth: string) => `auth: ${auth}
watchConfig: false
dataDir: ${join(dir.path, "data")}
http: { host: 127.0.0.1, port: 0 }
opcua: { enabled: false }
modbusSlave: { enabled: false }
mqtt: { enabled: true, url: "mqtt://edge:${PLANTED.bridgeUrlPw}@127.0.0.1:${port}", password: "${PLANTED.bridgePw}", reconnectMinMs: 50, reconnectMaxMs: 100 }
`;
const driversYml = (password: string) => `drivers:
  - id: dev
    type: mqtt
    endpoint: broker
    config: { password: ${password}, mappings: [{ topic: "t/+", tag: "t/{1}" }] }
`;

beforeAll(async () => {
  dir = tempDir();
  port = await freePort(); // nothing listens: the uplink and the driver fail and say so, URL included
  writeConfig(cfgDir(), {
    "gateway.yml": gatewayYml(`{ hs256Secret: "${PLANTED.secret}" }`),
    "endpoints.yml": `endpoints:\n  broker: { url: "mqtt://dev:${PLANTED.driverUrlPw}@127.0.0.1:${port}", timeoutMs: 200 }\n`,
    "drivers.yml": driversYml(`"${PLANTED.driverPw}"`),
    "variables.yml": "tags:\n  - { tag: t/a, driver: dev, type: float64 }\n",
  });
  const capture = { write: (line: string) => void (output += line) };
  gw = await Gateway.start({ configDir: cfgDir(), logger: pino({ level: "debug" }, capture) });
});
afterAll(async () => {
  await gw?.stop();
  dir?.cleanup();
});

/** Every event frame of the log, as text. */
async function eventText(): Promise<string> {
  const out: string[] = [];
  for await (const f of gw.ctx.log.read({ from: 1, kinds: ["event"] })) out.push(JSON.stringify(f));
  return out.join("\n");
}

describe("secrets in the config", () => {
  it("appear in no log line and no event through start, refused reloads and an accepted one", async () => {
    await waitFor(() => /mqtt uplink: connection to .* failed/.test(output), "the uplink's connection failure logged", 10_000);
    await waitFor(async () => /broker mqtt:\/\/dev:/.test(await eventText()), "the driver's connection failure in the event log", 10_000);

    const gw_yml = join(cfgDir(), "gateway.yml");
    writeFileSync(gw_yml, gatewayYml(`{ hs256Secret: "${PLANTED.shortSecret}" }`));
    const short = await reloadConfig(gw.ctx);
    expect(short.ok).toBe(false);
    expect(short.error).toContain("auth.hs256Secret");
    writeFileSync(gw_yml, gatewayYml(`{ hs256secret: "${PLANTED.typoKeySecret}" }`));
    const typo = await reloadConfig(gw.ctx);
    expect(typo.ok).toBe(false);
    expect(typo.error).toContain("hs256secret");
    writeFileSync(gw_yml, gatewayYml(`{ hs256Secret: "${PLANTED.rotated}" }`));
    expect((await reloadConfig(gw.ctx)).ok).toBe(true);
    // refused at reload by the driver's own config check (server/config-check.ts, issue #18): the refusal is an event too
    writeFileSync(join(cfgDir(), "drivers.yml"), driversYml(`["${PLANTED.arrayPw}"]`));
    const driverConfig = await reloadConfig(gw.ctx);
    expect(driverConfig.ok).toBe(false);
    expect(driverConfig.error).toContain("config.password");
    await waitFor(async () => (await eventText()).includes("config.password"), "the driver's config refusal in the event log", 10_000);

    // the event log as a reader sees it over SQL, with a token of the rotated secret
    const reader = await token(null, { claims: { scope: "read" }, key: new TextEncoder().encode(PLANTED.rotated) });
    const r = await fetch(`http://127.0.0.1:${gw.httpPort}/api/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${reader}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: "SELECT * FROM events" }),
    });
    expect(r.status).toBe(200);
    const sqlEvents = await r.text();
    const events = await eventText();
    expect(events).toContain("config.rejected");
    expect(sqlEvents).toContain("config.rejected");
    expect(output).toContain(REDACTED);

    for (const [what, planted] of Object.entries(PLANTED)) {
      expect({ what, inLog: output.includes(planted), inEvents: events.includes(planted), inSql: sqlEvents.includes(planted) }).toEqual({ what, inLog: false, inEvents: false, inSql: false });
    }
  });
});

describe("redaction of validation messages", () => {
  it("refuses a short hs256Secret at load naming the field, without its value", () => {
    const d = tempDir();
    try {
      writeConfig(d.path, { "gateway.yml": `auth: { hs256Secret: "${PLANTED.shortSecret}" }\n`, "drivers.yml": "drivers: []\n", "variables.yml": "tags: []\n" });
      expect(() => loadConfig(d.path)).toThrow(/auth\.hs256Secret.*got "\[redacted\]"/);
      expect(() => loadConfig(d.path)).not.toThrow(PLANTED.shortSecret);
    } finally {
      d.cleanup();
    }
  });

  it("redacts values under secret-like names and URL passwords, and keeps other values", () => {
    expect(gotValue("/auth/hs256Secret", "abc")).toBe(`"${REDACTED}"`);
    for (const field of ["/a/password", "/apiKey", "/x/accessToken", "/credentials"]) expect(gotValue(field, "v")).toBe(`"${REDACTED}"`);
    expect(gotValue("/mqtt", { url: "mqtt://u:pw@h:1", password: "p", qos: 3 })).toBe(`{"url":"mqtt://u:${REDACTED}@h:1","password":"${REDACTED}","qos":3}`);
    expect(gotValue("/tags/0/type", "float")).toBe('"float"');
    expect(redactSecrets("connection to mqtts://user:s3cr%40t@broker:8883/x failed")).toBe(`connection to mqtts://user:${REDACTED}@broker:8883/x failed`);
    expect(redactSecrets("mqtt://broker:1883 and http://host/path@x")).toBe("mqtt://broker:1883 and http://host/path@x");
  });
});
