// The plugins API and edgectl against a running gateway: a plugin driver named in drivers.yml runs from
// <config>/plugins; uploads need the admin scope, are refused with their reason, swap with rollback; a
// decoder plugin is listed with its process (running, batches, crashes, backoff, last error).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import type { PluginStatus } from "../../schemas/plugins.ts";
import { edgectl } from "../../server/edgectl.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { counterSource, LENGTH_DECODER, newKey, writePlugin } from "../drivers/plugins/fixtures.ts";

const SECRET = "plugins-api-test-secret-of-32-bytes!";
const key = newKey("acme");
const tmp = tempDir("plugins-api-");
let g: TestGateway;
const token = (scope: string) => new SignJWT({ sub: "ops", tenant: "default", scope }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));
const counterFrom = (base: number, extra = "") => counterSource(`poll() { n++; return tags.map((t) => ({ tag: t.tag, value: ${base} + n })); }, ${extra}`);

/** The folder as a tar body, as edgectl plugin load sends it. */
async function tarOf(dir: string): Promise<Uint8Array<ArrayBuffer>> {
  const files: Record<string, Blob> = {};
  for (const f of ["plugin.toml", "plugin.sig", "index.js"]) files[`counter/${f}`] = new Blob([await Bun.file(join(dir, f)).bytes()]);
  return new Uint8Array(await new Bun.Archive(files).bytes());
}

async function upload(path: string, body: Uint8Array<ArrayBuffer>, scope = "admin"): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${g.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${await token(scope)}`, "content-type": "application/x-tar" }, body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function listed(): Promise<PluginStatus[]> {
  return (await (await fetch(`${g.url}/api/plugins`, { headers: { authorization: `Bearer ${await token("read")}` } })).json()) as PluginStatus[];
}
const decoderListed = async () => (await listed()).find((p) => p.name === "dec")?.decoder;

async function latestValue(tag: string): Promise<number> {
  const res = await fetch(`${g.url}/api/tags`, { headers: { authorization: `Bearer ${await token("read")}` } });
  const tags = (await res.json()) as { tag: string; value: number }[];
  return tags.find((t) => t.tag === tag)?.value ?? NaN;
}

beforeAll(async () => {
  const config = join(tmp.path, "config");
  mkdirSync(config, { recursive: true });
  writeFileSync(join(config, "authorized_keys"), `${key.publicLine}\n`);
  await writePlugin(join(config, "plugins"), { name: "counter", source: counterFrom(0) }, key);
  await writePlugin(join(config, "plugins"), { name: "dec", kind: "decoder", source: LENGTH_DECODER }, key);
  g = await startGateway(
    {
      // a decoder's backoff after crashes in a row follows the drivers' (10 s: still running when listed)
      "gateway.yml": `auth: { hs256Secret: "${SECRET}" }\nlog: { maxDelayMs: 5 }\nplugins: { callTimeoutMs: 2000, maxUploadBytes: 65536 }\ndrivers: { backoffBaseMs: 10000, backoffMaxMs: 10000 }\n`,
      "drivers.yml": "drivers:\n  - id: plug\n    plugin: counter\n    config: { intervalMs: 10 }\n",
      "variables.yml": "tags:\n  - { tag: plug/a, driver: plug, type: float64 }\n",
      "authorized_keys": `${key.publicLine}\n`,
    },
    { keepDir: tmp.path },
  );
});

afterAll(async () => {
  await g?.stop();
  tmp.cleanup();
});

describe("plugins API", () => {
  it("runs the plugin driver named in drivers.yml and lists it with version, signer and api range", async () => {
    await waitFor(async () => (await latestValue("plug/a")) > 2, "readings of the plugin driver");
    const list = await listed();
    expect(list.filter((p) => p.kind === "driver")).toEqual([expect.objectContaining({ name: "counter", state: "loaded", version: "1.0.0", signer: "acme", unsigned: false, api: { min: 1, max: 1 }, drivers: ["plug"] })]);
  }, 20_000);

  it("lists a decoder plugin's process: not started, then running with its batches, then backing off after crashes in a row with the last error", async () => {
    expect(await decoderListed()).toEqual({ running: false, batches: 0, crashes: 0 });
    const dec = g.gw.ctx.plugins!.decoder("dec")!; // what an MQTT source with `decoder: dec` calls
    const text = new TextEncoder();
    expect(await dec.decode([text.encode("ab")])).toEqual([[{ tag: "len", value: 2 }]]);
    expect(await decoderListed()).toEqual({ running: true, pid: expect.any(Number), version: "1.0.0", batches: 1, crashes: 0 });
    await expect(dec.decode([text.encode("crash")])).rejects.toThrow();
    await expect(dec.decode([text.encode("crash")])).rejects.toThrow();
    const down = await decoderListed();
    expect(down).toMatchObject({ running: false, version: "1.0.0", batches: 1, crashes: 2, lastError: expect.stringContaining("exit code 3") });
    expect(down!.backoffMs).toBeGreaterThan(0);
    expect(down!.backoffMs).toBeLessThanOrEqual(10_000);
  }, 20_000);

  it("refuses an upload without the admin scope (403) and a tampered one with the failed check (422)", async () => {
    const dir = await writePlugin(join(tmp.path, "up-tampered"), { name: "counter", version: "2.0.0", source: counterFrom(1000) }, key);
    expect((await upload("/api/plugins", await tarOf(dir), "read")).status).toBe(403);
    writeFileSync(join(dir, "index.js"), counterFrom(666));
    const r = await upload("/api/plugins", await tarOf(dir));
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ error: "plugin_refused", field: "checksum" });
    expect(String(r.body.message)).toContain("index.js");
  });

  it("refuses an upload above plugins.maxUploadBytes with 413", async () => {
    const r = await upload("/api/plugins", new Uint8Array(70_000));
    expect(r.status).toBe(413);
  });

  it("swaps to an uploaded version 2, refuses a broken version 3 by rolling back, and rolls back to version 1 on request", async () => {
    const v2 = await writePlugin(join(tmp.path, "up2"), { name: "counter", version: "2.0.0", source: counterFrom(1000) }, key);
    const r2 = await upload("/api/plugins/counter/swap", await tarOf(v2));
    expect(r2.status).toBe(200);
    expect(r2.body).toMatchObject({ version: "2.0.0", lastSwap: { from: "1.0.0", to: "2.0.0", ok: true } });
    await waitFor(async () => (await latestValue("plug/a")) > 1000, "readings of version 2");
    const v3 = await writePlugin(join(tmp.path, "up3"), { name: "counter", version: "3.0.0", source: counterFrom(3000, `connect() { throw new Error("v3 cannot reach its device"); },`) }, key);
    const r3 = await upload("/api/plugins", await tarOf(v3));
    expect(r3.status).toBe(422);
    expect(r3.body).toMatchObject({ error: "swap_failed" });
    expect(String(r3.body.message)).toContain("v3 cannot reach its device");
    const r1 = await upload("/api/plugins/counter/rollback", new Uint8Array(0));
    expect(r1.status).toBe(200);
    expect(r1.body).toMatchObject({ version: "1.0.0", lastSwap: { from: "2.0.0", to: "1.0.0", ok: true } });
    await waitFor(async () => (await latestValue("plug/a")) < 1000, "readings of version 1 again");
  }, 20_000);

  it("accepts a plugin folder as multipart files named by their relative paths (the console's folder upload)", async () => {
    const dir = await writePlugin(join(tmp.path, "up-multipart"), { name: "counter", version: "1.1.0", source: counterFrom(0) }, key);
    const form = new FormData();
    for (const f of ["plugin.toml", "plugin.sig", "index.js"]) form.append("file", new File([await Bun.file(join(dir, f)).bytes()], `counter/${f}`));
    const res = await fetch(`${g.url}/api/plugins`, { method: "POST", headers: { authorization: `Bearer ${await token("admin")}` }, body: form });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: "counter", version: "1.1.0" });
  }, 20_000);

  it("edgectl plugin list prints the gateway's plugins", async () => {
    const lines: string[] = [];
    const log = console.log;
    console.log = (s: string) => lines.push(s);
    try {
      expect(await edgectl(["plugin", "list", "--url", g.url, "--token", await token("read")])).toBe(0);
    } finally {
      console.log = log;
    }
    expect(JSON.parse(lines.join("\n"))[0]).toMatchObject({ name: "counter", state: "loaded" });
  });
});
