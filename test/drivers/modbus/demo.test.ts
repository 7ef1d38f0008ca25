// The embedded demo: the gateway starts the demo PLC (gateway.yml demo.enabled) and polls it with the
// shipped demo config; writes change the PLC's setpoints.
import { afterEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, waitFor } from "../../helpers/index.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";

setDefaultTimeout(60_000);
const demoDir = join(import.meta.dir, "..", "..", "..", "server", "demo", "config");
let g: TestGateway | undefined;
afterEach(async () => {
  await g?.stop();
  g = undefined;
});

describe("demo plant", () => {
  it("serves the demo PLC and the gateway polls every demo tag with Good quality", async () => {
    const port = await freePort();
    g = await startGateway({
      "gateway.yml": `demo: { enabled: true, port: ${port} }`,
      "endpoints.yml": readFileSync(join(demoDir, "endpoints.yml"), "utf8").replace(/127\.0\.0\.1:\$\{EDGE_DEMO_PLC_PORT:-5021\}/, `127.0.0.1:${port}`),
      "drivers.yml": readFileSync(join(demoDir, "drivers.yml"), "utf8"),
      "variables.yml": readFileSync(join(demoDir, "variables.yml"), "utf8"),
    });
    const url = g.url;
    const tags = await waitFor(
      async () => {
        const list = (await (await fetch(`${url}/api/tags`)).json()) as { tag: string; quality: string; value: unknown }[];
        return list.length > 10 && list.every((t) => t.quality === "Good") && list;
      },
      "every demo tag Good",
      30_000,
      200,
    );
    const byTag = new Map(tags.map((t) => [t.tag, t.value]));
    expect(byTag.get("line1/plc/name")).toBe("DEMO-PLC");
    expect(byTag.get("line1/boiler/setpoint")).toBe(85);
    expect(typeof byTag.get("line1/boiler/pressure")).toBe("number");
    expect(byTag.get("line1/valve/open")).toBe(true);
  });
});
