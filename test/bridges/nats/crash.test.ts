// The gateway SIGKILLed at random moments while it ingests and publishes (a child process running the
// log and the NATS bridge), restarted each time: reading the stream back gives every offset exactly once.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { tempDir } from "../../helpers/index.ts";
import { exactlyOnce, NatsCluster, readStream } from "../../helpers/nats.ts";
import { Child } from "../../helpers/process.ts";

let nats: NatsCluster;
let nc: NatsConnection;
const dir = tempDir("edge-nats-crash-");

beforeAll(async () => {
  nats = await NatsCluster.single();
  nc = await nats.connect();
});
afterAll(async () => {
  await nc.close();
  await nats.close();
  dir.cleanup();
});

const CHILD = join(import.meta.dir, "gateway-child.ts");

/** Runs the child until it prints a line starting with `until`; returns the child and that line. */
async function runChild(args: string[], until: string): Promise<{ child: Child; line: string }> {
  const child = new Child("the gateway child", [process.execPath, CHILD, ...args], { stderr: "inherit" });
  const line = await child.waitForOutput((out) => out.split("\n").find((l) => l.startsWith(until)), `"${until}"`, 30_000);
  return { child, line };
}

describe("nats bridge under gateway crashes", () => {
  it("after 10 SIGKILLs of the gateway at random moments, the stream holds every offset exactly once", async () => {
    const path = join(dir.path, "log.duckdb");
    const servers = nats.servers.join(",");
    for (let round = 0; round < 10; round++) {
      const { child } = await runChild([servers, path], "ready");
      await Bun.sleep(150 + Math.random() * 700);
      await child.stop("SIGKILL");
    }
    const { child, line } = await runChild([servers, path, "drain"], "drained");
    expect(await child.exited).toBe(0);
    const head = Number(line.split(" ")[1]);
    expect(head).toBeGreaterThan(10_000);
    const got = await readStream(nc, "EDGE");
    expect(exactlyOnce(got.offsets, head)).toBe("");
  }, 60_000);
});
