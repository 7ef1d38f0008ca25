// Trust of plugin folders: signed by an authorized key and unchanged since, or refused with the reason.
import { afterAll, describe, expect, it } from "bun:test";
import { appendFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PluginRefused } from "../../../drivers/plugins/manifest.ts";
import { parseAuthorizedKeys, verifyPlugin, type AuthorizedKey } from "../../../drivers/plugins/trust.ts";
import { tempDir } from "../../helpers/index.ts";
import { counterSource, newKey, writePlugin } from "./fixtures.ts";

const tmp = tempDir("plugins-trust-");
afterAll(() => tmp.cleanup());
const key = newKey("acme");
const keys: AuthorizedKey[] = parseAuthorizedKeys(key.publicLine);

async function refusal(dir: string, allowUnsigned = false): Promise<PluginRefused> {
  const e = await verifyPlugin(dir, { keys, allowUnsigned }).then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(PluginRefused);
  return e as PluginRefused;
}

describe("plugin trust", () => {
  it("accepts a plugin signed by an authorized key and names the signer", async () => {
    const dir = await writePlugin(tmp.path, { name: "good", source: counterSource() }, key);
    const v = await verifyPlugin(dir, { keys });
    expect(v.manifest.name).toBe("good");
    expect(v.signer).toBe("acme");
    expect(v.unsigned).toBe(false);
  });

  it("refuses a plugin whose file changed after signing, naming the file", async () => {
    const dir = await writePlugin(tmp.path, { name: "tampered", source: counterSource() }, key);
    appendFileSync(join(dir, "index.js"), "\n// one more line\n");
    const e = await refusal(dir);
    expect(e.reason).toBe("checksum");
    expect(e.file).toBe("index.js");
    expect(e.message).toContain("index.js");
  });

  it("refuses a file added next to the entry that the manifest does not list", async () => {
    const dir = await writePlugin(tmp.path, { name: "extra", source: counterSource() }, key);
    writeFileSync(join(dir, "evil.js"), "export default 1;");
    const e = await refusal(dir);
    expect(e.reason).toBe("checksum");
    expect(e.file).toBe("evil.js");
  });

  it("refuses a plugin signed by a key that is not authorized", async () => {
    const dir = await writePlugin(tmp.path, { name: "stranger", source: counterSource() }, newKey("mallory"));
    const e = await refusal(dir);
    expect(e.reason).toBe("key");
    expect(e.message).toContain("not in authorized_keys");
  });

  it("refuses a manifest changed after signing (the signature no longer verifies)", async () => {
    const dir = await writePlugin(tmp.path, { name: "edited", source: counterSource() }, key);
    appendFileSync(join(dir, "plugin.toml"), "\ndescription = \"changed\"\n");
    const e = await refusal(dir);
    expect(e.reason).toBe("signature");
    expect(e.message).toContain("does not verify");
  });

  it("refuses a plugin without plugin.sig unless the development switch is on, then marks it unsigned", async () => {
    const dir = await writePlugin(tmp.path, { name: "unsigned", source: counterSource() }, null);
    const e = await refusal(dir);
    expect(e.reason).toBe("signature");
    expect(e.message).toContain("plugin.sig is missing");
    const v = await verifyPlugin(dir, { keys, allowUnsigned: true });
    expect(v.unsigned).toBe(true);
    expect(v.signer).toBeUndefined();
  });

  it("refuses a plugin whose api range does not include the gateway's", async () => {
    const dir = await writePlugin(tmp.path, { name: "future", api: { min: 2, max: 3 }, source: counterSource() }, key);
    const e = await refusal(dir);
    expect(e.reason).toBe("api");
    expect(e.message).toContain("2..3");
  });

  it("refuses a folder without a manifest, naming the folder", async () => {
    const dir = await writePlugin(tmp.path, { name: "nomanifest", source: counterSource() }, key);
    rmSync(join(dir, "plugin.toml"));
    const e = await refusal(dir);
    expect(e.reason).toBe("manifest");
    expect(e.plugin).toBe("nomanifest");
  });

  it("names the line of a malformed authorized_keys entry", () => {
    expect(() => parseAuthorizedKeys(`# keys\n${key.publicLine}\nrsa AAAA bob\n`, "authorized_keys")).toThrow("authorized_keys:3");
  });
});
