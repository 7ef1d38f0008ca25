// The console's build step (console/build.mjs, run by `npm start` / `npm test` through the bootstrap):
// it builds once, records the sources' digest, and skips the build while the sources are unchanged.
import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD_DIR, ensureConsoleBuilt, isBuildCurrent, sourceHash } from "../../console/build.mjs";

describe("console/build.mjs", () => {
  it("records the sources' digest next to the build and skips the next build while nothing changed", () => {
    ensureConsoleBuilt({ log: () => undefined });
    expect(readFileSync(join(BUILD_DIR, ".source-hash"), "utf8").trim()).toBe(sourceHash());
    expect(isBuildCurrent()).toBe(true);
    const started = performance.now();
    expect(ensureConsoleBuilt({ log: () => undefined })).toBe("current");
    expect(performance.now() - started).toBeLessThan(2000);
  }, 120_000);

  it("names the bun it could not start instead of 'exit null'", () => {
    expect(() => ensureConsoleBuilt({ bun: "no-such-dir/bun", force: true, log: () => undefined })).toThrow(/cannot run \/.+\/no-such-dir\/bun: .*ENOENT/);
  });

  it("writes precompressed copies of every script and page", () => {
    const index = readFileSync(join(BUILD_DIR, "200.html"), "utf8");
    const script = /\/_app\/immutable\/entry\/app\.[^"]+\.js/.exec(index)![0];
    for (const f of ["200.html", "index.html", script.slice(1)]) {
      expect(() => readFileSync(join(BUILD_DIR, `${f}.gz`))).not.toThrow();
      expect(() => readFileSync(join(BUILD_DIR, `${f}.br`))).not.toThrow();
    }
  });
});
