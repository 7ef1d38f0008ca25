// Alarm settings in variables.yml (Variable.alarms): accepted when sensible, and nonsense refused by
// the config check with the file and the path of the field at fault.
import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { checkConfig } from "../../../server/config-check.ts";
import { tempDir, writeConfig } from "../../helpers/index.ts";

const dirs: { cleanup(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

async function check(tag: string) {
  const d = tempDir();
  dirs.push(d);
  writeConfig(d.path, {
    "gateway.yml": "watchConfig: false\n",
    "drivers.yml": "drivers:\n  - { id: sim, type: simulator, enabled: false }\n",
    "variables.yml": `tags:\n  - ${tag}\n`,
  });
  const { config, problems } = await checkConfig(d.path);
  return { config, problems: problems.map((p) => ({ file: p.file, path: p.path, message: p.detail })), file: join(d.path, "variables.yml") };
}

describe("alarm configuration", () => {
  it("accepts limits, deadband, delays and a quality alarm, with defaults filled in", async () => {
    const { config, problems } = await check("{ tag: b/t, driver: sim, type: float64, alarms: { HH: { limit: 95, priority: critical }, H: { limit: 90 }, L: { limit: 10 }, deadband: 2, onDelayMs: 500, quality: { badForMs: 3000 } } }");
    expect(problems).toEqual([]);
    const a = config!.tags[0]!.alarms!;
    expect(a.HH).toEqual({ limit: 95, priority: "critical" });
    expect({ deadband: a.deadband, onDelayMs: a.onDelayMs, offDelayMs: a.offDelayMs }).toEqual({ deadband: 2, onDelayMs: 500, offDelayMs: 0 });
  });

  it("refuses H above HH with the file and the path of the limit", async () => {
    const { problems, file } = await check("{ tag: b/t, driver: sim, type: float64, alarms: { HH: { limit: 80 }, H: { limit: 90 } } }");
    expect(problems).toEqual([{ file, path: "tags[0].alarms.HH.limit", message: "HH limit 80 must be above H limit 90" }]);
  });

  it("refuses a deadband that makes the high and low alarms overlap", async () => {
    const { problems } = await check("{ tag: b/t, driver: sim, type: float64, alarms: { H: { limit: 50 }, L: { limit: 40 }, deadband: 6 } }");
    expect(problems.map((p) => p.path)).toEqual(["tags[0].alarms.deadband"]);
  });

  it("refuses a limit alarm on a bool tag and a bool alarm on a number", async () => {
    const a = await check("{ tag: b/run, driver: sim, type: bool, alarms: { H: { limit: 1 } } }");
    expect(a.problems.map((p) => [p.path, p.message])).toEqual([["tags[0].alarms.H", "a limit alarm needs a numeric tag; this tag is bool"]]);
    const b = await check("{ tag: b/t, driver: sim, type: float64, alarms: { bool: { when: true } } }");
    expect(b.problems.map((p) => p.path)).toEqual(["tags[0].alarms.bool"]);
  });

  it("refuses an unknown priority and an unknown field by their paths", async () => {
    const { problems } = await check("{ tag: b/t, driver: sim, type: float64, alarms: { H: { limit: 1, priority: urgent }, HHH: { limit: 2 } } }");
    expect(problems.map((p) => p.path).sort()).toEqual(["tags[0].alarms.H.priority", "tags[0].alarms.HHH"].sort());
  });

  it("refuses an alarms block without a condition", async () => {
    const { problems } = await check("{ tag: b/t, driver: sim, type: float64, alarms: { deadband: 1 } }");
    expect(problems.map((p) => [p.path, p.message])).toEqual([["tags[0].alarms", "no alarm condition: give HH, H, L, LL, bool or quality"]]);
  });
});
