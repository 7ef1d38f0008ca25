// Builds a JavaScript decoder into a WebAssembly component of the `edge:plugin` world with the QuickJS
// backend of componentize (the engine jco's `componentize --engine qjs` uses; called directly, so the
// preview2 shim's preopens workaround of `jco componentize` is not needed). WASI is stubbed out: the
// gateway refuses components that import it. `bun drivers/plugins/sdk/component/build.ts <in.js> <out.wasm>`
import { componentize } from "componentize-qjs";
import { join } from "node:path";

export const WIT_DIR = join(import.meta.dir, "../../wasm/wit");

export async function buildComponent(entry: string, opts: { stubWasi?: boolean } = {}): Promise<Uint8Array> {
  const { component } = await componentize({
    witPath: WIT_DIR,
    world: "decoder",
    jsSource: await Bun.file(entry).text(),
    jsPath: entry,
    sync: true,
    stubWasi: opts.stubWasi ?? true,
  });
  return new Uint8Array(component);
}

if (import.meta.main) {
  const [entry, out] = process.argv.slice(2);
  if (!entry || !out) {
    console.error("usage: bun drivers/plugins/sdk/component/build.ts <decoder.js> <out.wasm>");
    process.exit(2);
  }
  await Bun.write(out, await buildComponent(entry));
  console.log(`${out} written`);
}
