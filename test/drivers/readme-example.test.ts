// The README's driver example works as written: the manager runs it and its frames reach the log.
import { expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { DriverManager } from "../../drivers/index.ts";
import { Variable } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { CounterDriver } from "./readme-example.ts";

it("the README's driver example matches test/drivers/readme-example.ts and logs its counter", async () => {
  const readme = readFileSync(join(import.meta.dir, "..", "..", "README.md"), "utf8");
  const example = readFileSync(join(import.meta.dir, "readme-example.ts"), "utf8");
  const block = /## Writing a driver[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)![1]!;
  expect(example).toContain(block.replace('"../contract.ts"', '"../../drivers/contract.ts"').replace('"../validate.ts"', '"../../drivers/validate.ts"'));
  const dir = tempDir();
  const log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 1 });
  const mgr = new DriverManager({ log, factories: new Map([["counter", () => new CounterDriver()]]) });
  try {
    mgr.add({ id: "c", type: "counter", enabled: true, config: { intervalMs: 10 } }, undefined, [TypeValue.Default(Variable, { tag: "c/n", driver: "c", type: "int32" }) as Variable]);
    await waitFor(() => (log.latest().get("c/n")?.value as number) >= 3, "the counter to reach 3");
  } finally {
    await mgr.stop();
    await log.close();
    dir.cleanup();
  }
});
