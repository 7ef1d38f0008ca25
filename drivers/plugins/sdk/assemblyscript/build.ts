// Builds an AssemblyScript plugin into a .wasm the gateway loads (ABI.md): the incremental runtime
// (the stub runtime never frees), memory imported from the host so that the host sets its ceiling,
// optimised. Used by the tests and by plugin authors: `bun drivers/plugins/sdk/assemblyscript/build.ts
// <entry.ts> <out.wasm>`.
import asc from "assemblyscript/asc";

export class AscBuildError extends Error {
  override name = "AscBuildError";
}

export const ASC_FLAGS = ["--runtime", "incremental", "--importMemory", "--initialMemory", "1", "-O3"];

/** Compiles `entry` and returns the module's bytes; a compile error throws with the compiler's text. */
export async function buildAssemblyScript(entry: string, extraFlags: string[] = []): Promise<Uint8Array> {
  let binary: Uint8Array | undefined;
  const errors: string[] = [];
  const { error } = await asc.main([entry, "--outFile", "plugin.wasm", ...ASC_FLAGS, ...extraFlags], {
    writeFile: (name: string, contents: Uint8Array | string) => {
      if (name.endsWith(".wasm") && typeof contents !== "string") binary = contents;
    },
    stderr: { write: (s: string | Uint8Array) => void errors.push(String(s)) },
    stdout: { write: () => undefined },
  } as never);
  if (error || !binary) throw new AscBuildError(`${entry}: ${error?.message ?? "no output"}\n${errors.join("")}`);
  return binary;
}

if (import.meta.main) {
  const [entry, out] = process.argv.slice(2);
  if (!entry || !out) {
    console.error("usage: bun drivers/plugins/sdk/assemblyscript/build.ts <entry.ts> <out.wasm>");
    process.exit(2);
  }
  await Bun.write(out, await buildAssemblyScript(entry));
  console.log(`${out} written`);
}
