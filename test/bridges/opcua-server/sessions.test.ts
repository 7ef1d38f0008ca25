// Session limits: while clients hold every session a new one is refused and counted; clients that vanish
// without closing (child processes killed with SIGKILL) hold their sessions for at most the configured cap.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { AttributeIds } from "node-opcua";
import pino from "pino";
import { Registry } from "prom-client";
import { createOpcuaServer, type OpcuaServerBridge } from "../../../bridges/opcua-server/index.ts";
import { Catalog } from "../../../schemas/index.ts";
import { CommandBus } from "../../../storage/commands.ts";
import { EventLog } from "../../../storage/index.ts";
import { freePort, tempDir, waitFor } from "../../helpers/index.ts";
import { Child } from "../../helpers/process.ts";
import { connect } from "./helpers.ts";

const MAX_SESSIONS = 20;
/** clients per child process: four processes of five, killed together */
const PER_PROCESS = 5;
const CAP_MS = 2000;
const operator = { name: "operator", password: "op-secret" };
const dir = tempDir("edge-opcua-sessions-");
const pkiDir = join(dir.path, "client-pki");
const registry = new Registry();
let log: EventLog;
let commands: CommandBus;
let bridge: OpcuaServerBridge;

beforeAll(async () => {
  log = await EventLog.open({ path: join(dir.path, "data", "log.duckdb") });
  commands = new CommandBus(log);
  const passwordHash = await Bun.password.hash(operator.password, { algorithm: "bcrypt", cost: 4 });
  bridge = createOpcuaServer({
    config: {
      gateway: {
        opcua: {
          port: await freePort(), hostname: "127.0.0.1", allowAnonymous: true, maxSessions: MAX_SESSIONS, maxSessionTimeoutMs: CAP_MS,
          users: [{ name: operator.name, passwordHash, rights: ["read", "write"] }],
        },
        dataDir: join(dir.path, "data"),
        gatewayId: "test",
      },
    },
    log, catalog: new Catalog([]), commands, logger: pino({ level: "silent" }), metrics: { registry },
  });
  await bridge.start();
  // the client certificate is created once here, not by each child at the same time
  await (await connect(bridge.endpointUrl, { pkiDir })).close();
}, 30_000);

afterAll(async () => {
  await Promise.all(holders.map((c) => c.stop("SIGKILL")));
  await bridge?.stop();
  await log?.close();
  dir.cleanup();
});

/** the session holders, killed by the test (and by afterAll if it failed before) */
const holders: Child[] = [];

/** A child process holding `n` sessions; resolves once they are open. */
async function sessionHolder(n: number): Promise<Child> {
  const child = new Child("the session holder", [process.execPath, join(import.meta.dir, "session-holder.ts"), bridge.endpointUrl, pkiDir, String(n)], { stderr: "inherit" });
  holders.push(child);
  await child.waitForOutput((out) => out.includes("ready"), "its sessions open", 60_000);
  return child;
}

describe("opcua server sessions", () => {
  it(`refuses and counts a session while ${MAX_SESSIONS} clients hold every session, and frees them at most ${CAP_MS} ms (maxSessionTimeoutMs) after the clients were killed`, async () => {
    const children = await Promise.all(Array.from({ length: MAX_SESSIONS / PER_PROCESS }, () => sessionHolder(PER_PROCESS)));
    expect(bridge.status().sessions).toBe(MAX_SESSIONS);
    // while the clients live (and keep their sessions alive) a new session is refused, and counted
    await expect(connect(bridge.endpointUrl, { pkiDir, user: operator })).rejects.toThrow(/BadTooManySessions/);
    expect(bridge.status()).toMatchObject({ state: "degraded", sessionsRefused: 1 });
    expect(await registry.metrics()).toContain('edge_opcua_sessions_refused_total{reason="BadTooManySessions"} 1');
    await Promise.all(children.map((c) => c.stop("SIGKILL")));
    const killedAt = performance.now();
    // measured at the server (every 10 ms), not by a client's connects, which a loaded machine slows
    await waitFor(() => bridge.status().sessions === 0, "the vanished clients' sessions ended by the server", CAP_MS + 10_000, 10);
    const freedMs = performance.now() - killedAt;
    // a closed socket ends no session: the last ping (at most 2/3 of the cap before the kill) starts the
    // cap; then the server's session watchdog (1 s period) and a loaded event loop's lag
    expect(freedMs).toBeGreaterThan(CAP_MS / 3 - 100);
    expect(freedMs).toBeLessThan(CAP_MS + 1000 + 1500);
    const conn = await connect(bridge.endpointUrl, { pkiDir, user: operator });
    try {
      expect((await conn.session.read({ nodeId: "ns=0;i=2259", attributeId: AttributeIds.Value })).statusCode.name).toBe("Good"); // Server_ServerStatus_State
    } finally {
      await conn.close();
    }
  }, 30_000);
});
