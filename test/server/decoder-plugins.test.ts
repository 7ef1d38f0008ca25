// Decoder plugins in use by the gateway: a gateway with signed decoder plugins in <config>/plugins (the
// AssemblyScript meter example compiled here, a hand-written WebAssembly probe and the JS scaffold of
// `edgectl plugin new decoder`) and an MQTT source whose mappings name them; payloads published by
// mosquitto_pub (binary, from a file) to a real mosquitto arrive in the log as the decoded tags. A
// payload that traps is refused alone, a decoder process killed with SIGKILL or stuck past its deadline
// is replaced at the next batch, and a swap or an unload ends the process that ran the old version.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WASM_ADDRESS_RESERVE_MB } from "../../drivers/plugins/host.ts";
import { signPlugin } from "../../drivers/plugins/package.ts";
import { buildAssemblyScript } from "../../drivers/plugins/sdk/assemblyscript/build.ts";
import { pluginScaffold } from "../../server/plugin-scaffold.ts";
import { newKey } from "../drivers/plugins/fixtures.ts";
import { SAMPLE_TELEGRAM } from "../drivers/plugins/wasm/meter.ts";
import { FIXED_FRAMES, testDecoder } from "../drivers/plugins/wasm/fixtures.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { Mosquitto } from "../helpers/mosquitto.ts";

const EXAMPLE = join(import.meta.dir, "../../drivers/plugins/sdk/assemblyscript/examples/meter-decoder.ts");
// unoptimised: the same decoder in ~2 s instead of ~12 s on a loaded machine (the SDK's own test builds it -O3)
const ASC_QUICK = ["-O0"];
const key = newKey("acme");
const tmp = tempDir("decoder-plugins-");
const pluginsDir = join(tmp.path, "config", "plugins");
let broker: Mosquitto;
let g: TestGateway;

/** Writes and signs a plugin folder: its manifest and files. */
async function writeSigned(dir: string, files: Record<string, string | Uint8Array>): Promise<string> {
  mkdirSync(dir, { recursive: true });
  for (const [f, body] of Object.entries(files)) writeFileSync(join(dir, f), body);
  await signPlugin(dir, key.privatePem);
  return dir;
}

const wasmManifest = (name: string) => `name = "${name}"\nkind = "decoder"\nversion = "1.0.0"\nentry = "${name}.wasm"\napi = { min = 1, max = 1 }\n`;
/** the JS scaffold, with `scale` applied to every value (version 2 of the swap test scales by 1000) */
const jsDecoder = (version: string, scale = 1) => ({
  ...pluginScaffold("decoder", "jsdec"),
  "plugin.toml": pluginScaffold("decoder", "jsdec")["plugin.toml"]!.replace('version = "0.1.0"', `version = "${version}"`),
  "index.js": pluginScaffold("decoder", "jsdec")["index.js"]!.replace("({ tag, value }))", `({ tag, value: value * ${scale} }))`),
});

// the probe decides by its payload's first byte: 0 frames, 1 trap, 2 loop checking should_stop, 5 loop without checking
const probe = (mode: number) => new Uint8Array([mode, 0, 0, 0]);
const variables = [
  ...["energy_import_kwh", "energy_export_kwh", "power_w", "voltage_l1_v", "current_l1_a", "frequency_hz"].map((t) => `  - { tag: meter/40123/${t}, driver: src, type: float64, reportByException: false }`),
  ...["tamper", "battery_low"].map((t) => `  - { tag: meter/40123/${t}, driver: src, type: bool, reportByException: false }`),
  "  - { tag: probe/a/meter/energy, driver: src, type: float64, reportByException: false }",
  "  - { tag: probe/a/meter/on, driver: src, type: bool, reportByException: false }",
  "  - { tag: probe/a/meter/serial, driver: src, type: int64, reportByException: false }",
  "  - { tag: probe/a/meter/name, driver: src, type: string, reportByException: false }",
  "  - { tag: json/a/temp, driver: src, type: float64, reportByException: false }",
];

/** Publishes `payload` with mosquitto_pub, the bytes read from a file (-f), at QoS 1. */
async function publish(topic: string, payload: Uint8Array | string): Promise<void> {
  const file = join(tmp.path, `payload-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, payload);
  const p = Bun.spawn(["mosquitto_pub", "-h", "127.0.0.1", "-p", String(broker.port), "-q", "1", "-t", topic, "-f", file], { stderr: "pipe" });
  if ((await p.exited) !== 0) throw new Error(`mosquitto_pub failed: ${await new Response(p.stderr).text()}`);
}

async function frames(tag: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const f of g.gw.ctx.log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === tag && f.source === "src") out.push(f.value);
  return out;
}

async function refusals(): Promise<{ reason: string; message: string }[]> {
  const out: { reason: string; message: string }[] = [];
  for await (const f of g.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === "mqtt.bad_payload") out.push(f.data as { reason: string; message: string });
  return out;
}

/** The "Max address space" soft limit of a process, in MB. */
const addressLimitMb = (pid: number) => Number(/^Max address space\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"))![1]) / 1024 / 1024;

const decoderStatus = (name: string) => g.gw.ctx.plugins!.decoderStatus()[name];

beforeAll(async () => {
  broker = await Mosquitto.start();
  mkdirSync(join(tmp.path, "config"), { recursive: true });
  writeFileSync(join(tmp.path, "config", "authorized_keys"), `${key.publicLine}\n`);
  await writeSigned(join(pluginsDir, "meter"), { "plugin.toml": wasmManifest("meter"), "meter.wasm": await buildAssemblyScript(EXAMPLE, ASC_QUICK) });
  await writeSigned(join(pluginsDir, "probe"), { "plugin.toml": wasmManifest("probe"), "probe.wasm": testDecoder() });
  await writeSigned(join(pluginsDir, "jsdec"), jsDecoder("0.1.0"));
  g = await startGateway(
    {
      "gateway.yml": ["plugins: { callTimeoutMs: 1500, watch: false }", "drivers: { backoffBaseMs: 100, backoffMaxMs: 500, watchdogMs: 0 }"].join("\n"),
      "endpoints.yml": `endpoints:\n  broker: { url: "${broker.url}" }\n`,
      "drivers.yml": [
        "drivers:",
        "  - id: src",
        "    type: mqtt",
        "    endpoint: broker",
        "    config:",
        "      mappings:",
        '        - { topic: "meters/+/telegram", tag: "{tag}", decoder: meter }',
        '        - { topic: "probe/+", tag: "probe/{1}/{tag}", decoder: probe }',
        '        - { topic: "json/+", tag: "json/{1}/{tag}", decoder: jsdec }',
        "",
      ].join("\n"),
      "variables.yml": `tags:\n${variables.join("\n")}\n`,
    },
    { keepDir: tmp.path },
  );
  await waitFor(() => ["Connected", "Active"].includes(g.gw.ctx.drivers.driver("src")?.state ?? ""), "the mqtt source connected", 15_000);
}, 60_000);

afterAll(async () => {
  await g?.stop();
  await broker?.close();
  tmp.cleanup();
});

describe("decoder plugins in a gateway", () => {
  it("turns a binary telegram published by mosquitto_pub into the AssemblyScript decoder's tags in the log", async () => {
    await publish("meters/40123/telegram", SAMPLE_TELEGRAM);
    await waitFor(async () => (await frames("meter/40123/frequency_hz")).length > 0, "the decoded telegram", 15_000);
    const latest = g.gw.ctx.log.latest();
    expect(latest.get("meter/40123/energy_import_kwh")).toMatchObject({ value: 12345.67, quality: 0, ts: 1_764_633_600 * 1e6, source: "src" });
    expect(latest.get("meter/40123/power_w")?.value).toBe(-1520);
    expect(latest.get("meter/40123/battery_low")?.value).toBe(true);
    expect(latest.get("meter/40123/tamper")?.value).toBe(false);
    expect(decoderStatus("meter")).toMatchObject({ running: true, version: "1.0.0", crashes: 0 });
  }, 20_000);

  it("refuses a payload that traps the decoder as not_decodable, naming the trap, and decodes the next one", async () => {
    const before = (await frames("probe/a/meter/energy")).length;
    await publish("probe/a", probe(1));
    await publish("probe/a", probe(0));
    await waitFor(async () => (await frames("probe/a/meter/energy")).length === before + 1, "the next payload's frames");
    const refused = (await refusals()).filter((r) => r.reason === "not_decodable");
    expect(refused.at(-1)?.message).toMatch(/^decoder 'probe' could not decode the payload: wasm plugin trapped in decode/);
    expect(g.gw.ctx.log.latest().get("probe/a/meter/name")?.value).toBe(FIXED_FRAMES[3]!.value);
    expect(g.gw.ctx.log.latest().get("probe/a/meter/serial")?.value).toBe(9007199254740993n);
    expect(decoderStatus("probe")?.crashes).toBe(0); // a trap costs the payload, not the process
  }, 20_000);

  it("replaces a decoder process killed with SIGKILL at the next batch; the driver stays Active", async () => {
    const pid = decoderStatus("probe")!.pid!;
    process.kill(pid, "SIGKILL");
    await waitFor(() => decoderStatus("probe")?.crashes === 1, "the crash noticed");
    const before = (await frames("probe/a/meter/energy")).length;
    await publish("probe/a", probe(0));
    await waitFor(async () => (await frames("probe/a/meter/energy")).length === before + 1, "frames from a fresh process");
    expect(decoderStatus("probe")).toMatchObject({ running: true });
    expect(decoderStatus("probe")!.pid).not.toBe(pid);
    expect(g.gw.ctx.drivers.driver("src")?.state).toBe("Active");
  }, 20_000);

  it("kills a decoder stuck in an endless WebAssembly loop at its deadline, refuses that message and decodes the next", async () => {
    const pid = decoderStatus("probe")!.pid!;
    await publish("probe/a", probe(5));
    await waitFor(async () => (await refusals()).some((r) => r.reason === "unhandled" && /decoder 'probe' failed: PluginTimeout/.test(r.message)), "the timed-out message refused", 10_000);
    const before = (await frames("probe/a/meter/energy")).length;
    await publish("probe/a", probe(0));
    await waitFor(async () => (await frames("probe/a/meter/energy")).length === before + 1, "frames from a fresh process");
    expect(decoderStatus("probe")!.pid).not.toBe(pid);
  }, 20_000);

  it("stops a loop that checks should_stop at the plugin's own time limit, below the deadline: the process lives on", async () => {
    const pid = decoderStatus("probe")!.pid!;
    await publish("probe/a", probe(2));
    await waitFor(async () => (await refusals()).some((r) => /decoder .probe. failed: PluginCallError: .*WasmDeadlineError: .*passed its time limit of 1200 ms/.test(r.message)), "the stopped message refused", 10_000);
    const before = (await frames("probe/a/meter/energy")).length;
    await publish("probe/a", probe(0));
    await waitFor(async () => (await frames("probe/a/meter/energy")).length === before + 1, "the next payload's frames");
    expect(decoderStatus("probe")!.pid).toBe(pid);
  }, 20_000);

  it("leaves a WebAssembly decoder's process room for JSC's memory reservation, and caps a JS decoder's at memoryMb", async () => {
    await publish("json/a", JSON.stringify({ temp: 1 }));
    await waitFor(() => decoderStatus("jsdec")?.running, "the JS decoder's process");
    // without the reservation JSC runs the module without fast memory: ~100x slower (host.ts)
    expect(addressLimitMb(decoderStatus("probe")!.pid!)).toBe(768 + WASM_ADDRESS_RESERVE_MB);
    expect(addressLimitMb(decoderStatus("jsdec")!.pid!)).toBe(768);
  });

  it("decodes JSON payloads with the JavaScript decoder scaffold of edgectl plugin new", async () => {
    await publish("json/a", JSON.stringify({ temp: 21.5 }));
    await waitFor(() => g.gw.ctx.log.latest().get("json/a/temp")?.value === 21.5, "the JS decoder's frame");
  }, 20_000);

  it("ends the old version's process on a swap: the next payload is decoded by version 2", async () => {
    const pid = decoderStatus("jsdec")!.pid!;
    const staged = await writeSigned(join(tmp.path, "staged-jsdec"), jsDecoder("0.2.0", 1000));
    expect((await g.gw.ctx.plugins!.install(staged)).version).toBe("0.2.0");
    await publish("json/a", JSON.stringify({ temp: 2 }));
    await waitFor(() => g.gw.ctx.log.latest().get("json/a/temp")?.value === 2000, "version 2's frame");
    expect(decoderStatus("jsdec")).toMatchObject({ running: true, version: "0.2.0" });
    expect(decoderStatus("jsdec")!.pid).not.toBe(pid);
  }, 20_000);

  it("rolls a swap to a decoder version that does not load back to the running one, which goes on decoding", async () => {
    const pid = decoderStatus("jsdec")!.pid!;
    const broken = { ...jsDecoder("0.3.0"), "index.js": "throw new Error('broken build');\n" };
    const staged = await writeSigned(join(tmp.path, "staged-jsdec-broken"), broken);
    await expect(g.gw.ctx.plugins!.install(staged)).rejects.toThrow(/swap 0.2.0 -> 0.3.0 failed, rolled back to 0.2.0: .*broken build/);
    expect(g.gw.ctx.plugins!.statusOf("jsdec")).toMatchObject({ version: "0.2.0", lastSwap: { ok: false } });
    await publish("json/a", JSON.stringify({ temp: 4 }));
    await waitFor(() => g.gw.ctx.log.latest().get("json/a/temp")?.value === 4000, "version 2 still decoding");
    expect(decoderStatus("jsdec")!.pid).toBe(pid);
  }, 20_000);

  it("refuses the messages of an unloaded decoder, saying it is not loaded, and ends its process", async () => {
    await g.gw.ctx.plugins!.unload("jsdec");
    expect(decoderStatus("jsdec")?.running).toBe(false);
    await publish("json/a", JSON.stringify({ temp: 3 }));
    await waitFor(async () => (await refusals()).some((r) => r.message.includes("decoder 'jsdec' is not available: no such plugin is loaded")), "the refusal");
    expect(g.gw.ctx.drivers.driver("src")?.state).toBe("Active");
  }, 20_000);
});
