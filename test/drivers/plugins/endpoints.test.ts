// Endpoints of plugin drivers: a plugin gets the driver's endpoint only if its manifest requested the
// scheme, and inside its process it can connect to that endpoint and nowhere else.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { PluginProcess } from "../../../drivers/plugins/host.ts";
import { PluginDriver, type PluginDriverHost } from "../../../drivers/plugins/driver.ts";
import { PluginRefused } from "../../../drivers/plugins/manifest.ts";
import { parseAuthorizedKeys, verifyPlugin } from "../../../drivers/plugins/trust.ts";
import { tempDir } from "../../helpers/index.ts";
import { newKey, writePlugin } from "./fixtures.ts";

const tmp = tempDir("plugins-ep-");
const key = newKey();
let granted: TCPSocketListener<undefined>;
let other: TCPSocketListener<undefined>;
const echo = { data: (s: Socket<undefined>, d: Buffer) => void s.write(d) };

beforeAll(() => {
  granted = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: echo });
  other = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: echo });
});
afterAll(() => {
  granted.stop(true);
  other.stop(true);
  tmp.cleanup();
});

/** connect(url) resolves "connected" or the error message, from inside the plugin's process */
const PROBE = `import net from "node:net";
export default () => ({
  connect(url) {
    const u = new URL(url);
    return new Promise((resolve) => {
      try {
        const s = net.connect(Number(u.port), u.hostname, () => { s.end(); resolve("connected"); });
        s.on("error", (e) => resolve(e.message));
      } catch (e) { resolve(e.name + ": " + e.message); }
    });
  },
});
`;

describe("plugin endpoints", () => {
  it("lets a plugin connect to its granted endpoint and refuses any other", async () => {
    const dir = await writePlugin(tmp.path, { name: "probe", endpoints: ["tcp"], source: PROBE }, key);
    const grantedUrl = `tcp://127.0.0.1:${granted.port}`;
    const p = await PluginProcess.start({ name: "probe", dir, entry: "index.js", kind: "driver", memoryMb: 768, callTimeoutMs: 3000, endpoints: [grantedUrl] });
    try {
      expect(await p.call("connect", [grantedUrl])).toBe("connected");
      expect(await p.call("connect", [`tcp://127.0.0.1:${other.port}`])).toContain(`EndpointNotGranted: connection to 127.0.0.1:${other.port} refused`);
    } finally {
      p.kill();
    }
  });

  it("refuses to start a plugin driver on an endpoint whose scheme its manifest did not request, with reason capability", async () => {
    const dir = await writePlugin(tmp.path, { name: "noep", endpoints: [], source: `export default () => ({ poll() { return []; } });` }, key);
    const plugin = await verifyPlugin(dir, { keys: parseAuthorizedKeys(key.publicLine) });
    const refusals: PluginRefused[] = [];
    const host: PluginDriverHost = { current: () => plugin, attach() {}, detach() {}, refused: (e) => refusals.push(e), processOptions: () => ({ memoryMb: 768, callTimeoutMs: 2000 }), log() {} };
    const d = new PluginDriver("noep", host);
    d.init({ id: "d1", config: {}, tags: [] });
    const err = await d.connect({ url: `tcp://127.0.0.1:${granted.port}`, scheme: "tcp" } as Parameters<PluginDriver["connect"]>[0]).then(() => null, (e: unknown) => e);
    expect((err as Error).message).toContain("requests only no endpoint");
    expect(refusals[0]).toMatchObject({ reason: "capability", plugin: "noep" });
  });
});
