// `discover opcua` against a node-opcua server started in the test with a known address space:
// folders, Double/Int32/Boolean/String variables, an AnalogItem with a unit, a read-only and a
// writable variable, an array and a DateTime (skipped). The generated files validate and, loaded as
// they are by a gateway, poll those nodes Good with the server's values.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { OPCUAServer } from "node-opcua";
import YAML from "yaml";
import { checkConfig } from "../../server/config-check.ts";
import { edgectl } from "../../server/edgectl.ts";
import { discoverOpcua, tagNamer } from "../../server/discover/opcua.ts";
import { TAG_NAME_PATTERN } from "../../schemas/config.ts";
import { DISCOVERED_FILES, writeFiles, type DiscoveredFiles } from "../../server/discover/files.ts";
import { Quality } from "../../schemas/quality.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { silenced, startPlant } from "./discover-fixture.ts";

let server: OPCUAServer;
let url = "";
const dir = tempDir("edge-discover-opcua-");
const pkiDir = join(dir.path, "pki");

beforeAll(async () => {
  const port = await freePort();
  server = await startPlant(port);
  url = `opc.tcp://127.0.0.1:${port}/UA/plant`;
}, 30_000);

afterAll(async () => {
  await server?.shutdown(0).catch(() => undefined);
  dir.cleanup();
}, 30_000);

type Tag = { tag: string; type: string; access?: string; unit?: string; address: { nodeId: string } };

describe("discover opcua", () => {
  let files = {} as DiscoveredFiles;
  let tags: Tag[] = [];
  let gw: TestGateway | undefined;
  afterAll(async () => await gw?.stop(), 30_000);

  it("drafts one tag per scalar variable with its browse path, node id, type, unit and access", async () => {
    const r = await discoverOpcua({ url, driverId: "boiler", pkiDir, timeoutMs: 20_000 });
    files = r.files;
    tags = (YAML.parse(files["variables.yml"]) as { tags: Tag[] }).tags;
    const byName = new Map(tags.map((t) => [t.tag, t]));
    expect(byName.get("boiler/Plant/Boiler/Pressure")).toMatchObject({ type: "float64", access: "R", address: { nodeId: "ns=1;s=Plant.Boiler.Pressure" } });
    expect(byName.get("boiler/Plant/Boiler/Count")).toMatchObject({ type: "int32" });
    expect(byName.get("boiler/Plant/Boiler/Running")).toMatchObject({ type: "bool" });
    expect(byName.get("boiler/Plant/Boiler/Name")).toMatchObject({ type: "string" });
    expect(byName.get("boiler/Plant/Boiler/Setpoint")).toMatchObject({ type: "float64", access: "RW" });
    expect(byName.get("boiler/Plant/Boiler/Temperature")).toMatchObject({ type: "float64", unit: "°C", address: { nodeId: "ns=1;s=Plant.Boiler.Temperature" } });
    // the AnalogItem's properties are not tags; the array and the DateTime are skipped and said so
    expect(tags.map((t) => t.tag).sort()).toEqual(["Count", "Flow_rate", "Flow_rate_2", "Name", "Pressure", "Running", "Setpoint", "Temperature"].map((n) => `boiler/Plant/Boiler/${n}`));
    expect(r.skipped.map((s) => s.path).sort()).toEqual(["Plant/Boiler/History", "Plant/Boiler/Started"]);
    expect(files["variables.yml"]).toContain("# skipped Plant/Boiler/History");
    expect(YAML.parse(files["drivers.yml"])).toEqual({ drivers: [{ id: "boiler", type: "opcua", endpoint: "boiler", enabled: true, config: { mode: "subscription", pkiDir } }] });
    expect(YAML.parse(files["endpoints.yml"]).endpoints.boiler.url).toBe(url);
  }, 30_000);

  it("names two variables whose browse names make the same tag name Flow_rate and Flow_rate_2, names the tag schema accepts", async () => {
    const flows = tags.filter((t) => t.tag.startsWith("boiler/Plant/Boiler/Flow_rate"));
    expect(flows.map((t) => t.tag).sort()).toEqual(["boiler/Plant/Boiler/Flow_rate", "boiler/Plant/Boiler/Flow_rate_2"]);
    expect(flows.map((t) => t.address.nodeId).sort()).toEqual(["ns=1;s=Plant.Boiler.Flow rate", "ns=1;s=Plant.Boiler.Flow/rate"]);
    for (const t of flows) expect(t.tag).toMatch(new RegExp(TAG_NAME_PATTERN));
    // a name already taken by another variable is skipped, not reused
    const name = tagNamer("d");
    expect([name(["a"]), name(["a_2"]), name(["a"]), name(["a"])]).toEqual(["d/a", "d/a_2", "d/a_3", "d/a_4"]);
  });

  it("writes, through `edgectl discover opcua`, files that pass the config check as they are", async () => {
    const out = join(dir.path, "out");
    const args = ["discover", "opcua", url, "--driver", "boiler", "--pki-dir", pkiDir, "--out", out];
    expect(await silenced(() => edgectl(args))).toBe(0);
    for (const name of DISCOVERED_FILES) expect(readFileSync(join(out, name), "utf8").split("\n").slice(1)).toEqual(files[name].split("\n").slice(1));
    const { problems } = await checkConfig(out);
    expect(problems.map((p) => `${p.file}: ${p.path}: ${p.detail}`)).toEqual([]);
    // a second run does not overwrite what an integrator may have edited
    expect(await silenced(() => edgectl(args))).toBe(1);
    expect(() => writeFiles(out, files)).toThrow(/exist.*--force/);
  }, 30_000);

  it("makes a gateway started on the generated files read every discovered node Good with the server's values, monitored 3 items a call (the server's limit)", async () => {
    const generated = Object.fromEntries(DISCOVERED_FILES.map((n) => [n, readFileSync(join(dir.path, "out", n), "utf8")]));
    gw = await startGateway(generated);
    const latest = (tag: string) => gw!.gw.ctx.log.latest().get(`boiler/Plant/Boiler/${tag}`);
    const flowRate = (tags.find((t) => t.address.nodeId === "ns=1;s=Plant.Boiler.Flow rate")!.tag).split("/").at(-1)!; // which of the two got _2 is browse order
    const want: Record<string, unknown> = { Pressure: 3.25, Count: 42, Running: true, Name: "Boiler 1", Setpoint: 70, Temperature: 81.5, [flowRate]: 1.5, [flowRate === "Flow_rate" ? "Flow_rate_2" : "Flow_rate"]: 2.5 };
    await waitFor(() => Object.keys(want).every((k) => latest(k)?.quality === Quality.Good), "every discovered tag Good", 20_000);
    for (const [k, v] of Object.entries(want)) expect(latest(k)!.value as unknown).toEqual(v);
  }, 40_000);

  it("polls the generated tags in mode poll too, each read within the server's 3 nodes per read", async () => {
    await gw?.stop();
    const generated = Object.fromEntries(DISCOVERED_FILES.map((n) => [n, readFileSync(join(dir.path, "out", n), "utf8")]));
    generated["drivers.yml"] = generated["drivers.yml"]!.replace("mode: subscription", "mode: poll\n      intervalMs: 100");
    gw = await startGateway(generated);
    const latest = (tag: string) => gw!.gw.ctx.log.latest().get(tag);
    await waitFor(() => tags.every((t) => latest(t.tag)?.quality === Quality.Good), "every discovered tag Good by polling", 20_000);
    expect(latest("boiler/Plant/Boiler/Temperature")!.value).toBe(81.5);
  }, 40_000);

  it("stops at its depth and node bounds and says the browse was cut", async () => {
    const shallow = await discoverOpcua({ url, pkiDir, maxDepth: 2 });
    expect(shallow).toMatchObject({ tags: 0, browsed: 2, truncated: true });
    expect(shallow.files["variables.yml"]).toContain("browse cut by maxDepth/maxNodes");
    const few = await discoverOpcua({ url, pkiDir, maxNodes: 4 });
    expect(few).toMatchObject({ browsed: 4, tags: 2, truncated: true });
  }, 30_000);

  it("says which server it could not reach", async () => {
    const port = await freePort();
    await expect(discoverOpcua({ url: `opc.tcp://127.0.0.1:${port}`, pkiDir, timeoutMs: 5000 })).rejects.toThrow(new RegExp(`cannot connect to opc.tcp://127.0.0.1:${port}|no session with`));
  }, 20_000);
});
