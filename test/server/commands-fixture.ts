// Fixtures of the setpoint-write tests and benchmark: a real Modbus TCP server (server/demo's) behind
// an optional proxy that can hold write responses (a device that has taken a write but not answered),
// keys and tokens (HS256, RS256, EdDSA), and a gateway config around them.
import { writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from "jose";
import { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { tempDir, writeConfig } from "../helpers/index.ts";

export const HS_SECRET = "test-secret-of-at-least-32-characters!!";

/**
 * A gateway config with HS256 auth (HS_SECRET), no file watching and a disabled simulator `sim` owning
 * the tags of `variables` (the YAML list under `tags:`): what an API test needs besides its own tags.
 */
export function authGatewayFiles(variables: string): Record<string, string> {
  return {
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nwatchConfig: false\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": `tags:\n${variables}`,
  };
}

export interface Keys {
  rsa: CryptoKey;
  rsaPublicPem: string;
  ed: CryptoKey;
  jwks: { keys: Record<string, unknown>[] };
}

export async function makeKeys(): Promise<Keys> {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const ed = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const jwks = {
    keys: [
      { ...(await exportJWK(rsa.publicKey)), kid: "rsa1", alg: "RS256", use: "sig" },
      { ...(await exportJWK(ed.publicKey)), kid: "ed1", alg: "EdDSA", use: "sig" },
    ],
  };
  return { rsa: rsa.privateKey, rsaPublicPem: await exportSPKI(rsa.publicKey), ed: ed.privateKey, jwks };
}

export interface TokenOpts {
  claims?: JWTPayload;
  alg?: "HS256" | "RS256" | "EdDSA";
  /** seconds from now; negative for an expired token */
  expiresIn?: number;
  key?: CryptoKey | Uint8Array;
}

export async function token(keys: Keys | null, o: TokenOpts = {}): Promise<string> {
  const alg = o.alg ?? "HS256";
  const claims = { sub: "alice", tenant: "acme", scope: "read write", ...o.claims };
  const now = Math.floor(Date.now() / 1000);
  const key = o.key ?? (alg === "HS256" ? new TextEncoder().encode(HS_SECRET) : alg === "RS256" ? keys!.rsa : keys!.ed);
  return await new SignJWT(claims)
    .setProtectedHeader({ alg, ...(alg === "RS256" ? { kid: "rsa1" } : alg === "EdDSA" ? { kid: "ed1" } : {}) })
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (o.expiresIn ?? 300))
    .sign(key);
}

/** An unsigned token (alg none), as an attacker would send it. */
export function unsignedToken(claims: JWTPayload = { sub: "alice", tenant: "acme", scope: "write" }): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64({ ...claims, exp: Math.floor(Date.now() / 1000) + 300 })}.`;
}

/**
 * A TCP proxy in front of a Modbus server. With `hold` set, write requests (FC 5, 6, 15, 16) are
 * forwarded (the device applies them) but their responses are kept back: a device that took the
 * write and has not answered yet.
 */
export class HoldingProxy {
  hold = false;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;
  constructor(private readonly target: number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.target, "127.0.0.1");
      this.sockets.add(client).add(upstream);
      const held = new Set<number>();
      let buf = Buffer.alloc(0);
      client.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 7 && buf.length >= 6 + buf.readUInt16BE(4)) {
          const frame = buf.subarray(0, 6 + buf.readUInt16BE(4));
          buf = buf.subarray(frame.length);
          if (this.hold && [5, 6, 15, 16].includes(frame[7]!)) held.add(frame.readUInt16BE(0));
          upstream.write(frame);
        }
      });
      let back = Buffer.alloc(0);
      upstream.on("data", (chunk: Buffer) => {
        back = Buffer.concat([back, chunk]);
        while (back.length >= 7 && back.length >= 6 + back.readUInt16BE(4)) {
          const frame = back.subarray(0, 6 + back.readUInt16BE(4));
          back = back.subarray(frame.length);
          if (!held.has(frame.readUInt16BE(0))) client.write(frame);
        }
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("close", close).on("error", close);
      upstream.on("close", close).on("error", close);
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    const a = this.server.address();
    this.port = typeof a === "object" && a ? a.port : 0;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** A Modbus server that counts the writes per holding register. */
export async function startPlc(): Promise<{ plc: ModbusTcpServer; writes: Map<number, number> }> {
  const plc = new ModbusTcpServer({ size: 1000 });
  const writes = new Map<number, number>();
  plc.onWrite = (w) => {
    for (let i = 0; i < w.count; i++) writes.set(w.address + i, (writes.get(w.address + i) ?? 0) + 1);
  };
  await plc.start();
  return { plc, writes };
}

/** Keys, a counting Modbus server and a HoldingProxy in front of it, started. */
export async function startPlcBehindProxy(): Promise<{ keys: Keys; plc: ModbusTcpServer; writes: Map<number, number>; proxy: HoldingProxy }> {
  const keys = await makeKeys();
  const { plc, writes } = await startPlc();
  const proxy = new HoldingProxy(plc.port);
  await proxy.start();
  return { keys, plc, writes, proxy };
}

/** Config files for a gateway with one Modbus driver on `port` and a few setpoint tags. */
export function configFiles(dir: string, port: number, keys: Keys, gatewayExtra = "", endpointTimeoutMs = 2000): Record<string, string> {
  writeFileSync(join(dir, "jwks.json"), JSON.stringify(keys.jwks));
  return {
    "gateway.yml": [`auth: { hs256Secret: "${HS_SECRET}", jwksFile: ${join(dir, "jwks.json")} }`, gatewayExtra].filter(Boolean).join("\n"),
    "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:${port}", timeoutMs: ${endpointTimeoutMs} }\n`,
    "drivers.yml": `drivers:\n  - id: plc\n    type: modbus\n    endpoint: plc\n    config: { intervalMs: 100 }\n`,
    "variables.yml": `tags:
  - { tag: line1/sp/temp, driver: plc, type: int16, address: { area: holding, address: 10 }, access: RW, min: 0, max: 500, tenant: acme }
  - { tag: line1/sp/speed, driver: plc, type: uint16, address: { area: holding, address: 11 }, access: W, tenant: acme }
  - { tag: line1/sp/ratio, driver: plc, type: float32, address: { area: holding, address: 12 }, access: RW, tenant: acme }
  - { tag: line1/pv/temp, driver: plc, type: int16, address: { area: holding, address: 20 }, access: R, tenant: acme }
  - { tag: other/sp, driver: plc, type: int16, address: { area: holding, address: 30 }, access: RW, tenant: globex }
`,
  };
}

/** A PLC behind a HoldingProxy and the config directory of a gateway child for it (the crash tests). */
export interface CrashRig {
  keys: Keys;
  plc: ModbusTcpServer;
  writes: Map<number, number>;
  proxy: HoldingProxy;
  /** the config directory (spawnGateway's argument) */
  cfg: string;
  stop(): Promise<void>;
}

/**
 * Starts the PLC and its proxy and writes the config: data in a temp dir, HTTP on a port the kernel
 * chooses, no OPC UA server, Modbus slave or demo; acks wait 300 ms, device writes up to 2 minutes.
 */
export async function startCrashRig(): Promise<CrashRig> {
  const { keys, plc, writes, proxy } = await startPlcBehindProxy();
  const dir = tempDir();
  const files = configFiles(dir.path, proxy.port, keys, "commands: { ackTimeoutMs: 300, writeTimeoutMs: 120000 }", 60_000);
  files["gateway.yml"] += `\ndataDir: ${join(dir.path, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: false }\nmodbusSlave: { enabled: false }\ndemo: { enabled: false }\n`;
  const cfg = writeConfig(join(dir.path, "config"), files);
  return {
    keys,
    plc,
    writes,
    proxy,
    cfg,
    async stop() {
      await proxy.stop();
      await plc.stop();
      dir.cleanup();
    },
  };
}
