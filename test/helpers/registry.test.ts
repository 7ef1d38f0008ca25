// The registry of what the helpers start (registry.ts): a test file whose beforeAll times out while its
// gateway starts, or fails after starting a gateway and a gateway child, leaves nothing running once the
// next file's tests run. The three files run in their own `bun test` (with the preload of bunfig.toml):
// leak-starting.ts (times out after 5 ms, its hook goes on into the next files), leak-started.ts (fails
// after both started, the references in its locals), leak-next.ts (asks the kernel what still runs).
import { afterAll, expect, it } from "bun:test";
import { join } from "node:path";
import { tempDir } from "./index.ts";

const root = join(import.meta.dir, "..", "..");
const fixtures = ["leak-starting.ts", "leak-started.ts", "leak-next.ts"].map((f) => `./test/helpers/fixtures/${f}`);
const report = tempDir("edge-leak-");
afterAll(() => report.cleanup());

it("stops what a timed-out or failed beforeAll started before the next file's tests run", async () => {
  const proc = Bun.spawn([process.execPath, "test", ...fixtures], {
    cwd: root,
    env: { ...process.env, LEAK_REPORT_DIR: report.path },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const text = out + err;
  // the two leaking files did fail as intended: the first on its hook's timeout, the second on its error
  expect(text).toContain("a beforeEach/afterEach hook timed out");
  expect(text).toContain("the beforeAll failed after starting a gateway and a gateway child");
  const check = JSON.parse(/LEAK-CHECK (.*)/.exec(text)?.[1] ?? "null") as { listening: number[]; children: number[]; startedChildAlive: boolean; startedHttp: number[]; registered: unknown[]; closed: string[] } | null;
  expect(check?.startedHttp).toHaveLength(2);
  expect(check).toMatchObject({ listening: [], children: [], startedChildAlive: false, registered: [] });
  // each file's gateway and gateway child, closed by the registry (the first file's child was spawned by its hook after the file ended)
  expect(check?.closed.toSorted()).toEqual(["leak-started.ts: a gateway", "leak-started.ts: the gateway", "leak-starting.ts: a gateway", "leak-starting.ts: the gateway"]);
  expect(text).toContain("(pass) starts with no gateway of the earlier files running");
}, 120_000);
