// The OPC UA client connection shared by every driver on one server: one OPCUAClient (secure channel)
// and one session per endpoint URL + security settings + user, taken from the endpoint pool. Each
// driver adds its own subscription to it. Also the client's PKI folder and its certificate, and the
// translation of node-opcua's connection errors into messages an operator can act on.
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  UserTokenType,
  type ClientSession,
  type UserIdentityInfo,
} from "node-opcua";
import { settlesWithin } from "../../storage/time.ts";
import type { Endpoint } from "../endpoint.ts";
import type { OpcuaClientConfig } from "./config.ts";
import { readLimits, type OperationLimits } from "./limits.ts";
import { driverCertificateManager, type TrustNote } from "./trust.ts";

/** One application name for every client: the certificate in the PKI folder carries its URI. */
export const CLIENT_APPLICATION_NAME = "edge-gateway";

/** The driver's PKI folder: `pkiDir` (set from the gateway data directory at init when absent), else <EDGE_DATA_DIR or ./data>/pki/opcua-client (a driver run outside a gateway). */
export function clientPkiDir(cfg: Pick<OpcuaClientConfig, "pkiDir">, dataDir?: string): string {
  return cfg.pkiDir ?? join(dataDir ?? process.env.EDGE_DATA_DIR ?? "./data", "pki", "opcua-client");
}

/** Where the client's certificate lives in its PKI folder (what a server's operator must trust). */
export function clientCertificateFile(pkiDir: string): string {
  return join(pkiDir, "own", "certs", "client_certificate.pem");
}

/**
 * Creates the client's self-signed certificate in `pkiDir` unless it exists (node-opcua's own
 * creation, under its file lock), and returns its file. The driver does this on first connect; an
 * operator (or a test) can do it beforehand to hand the certificate to the server's operator.
 */
export async function ensureClientCertificate(pkiDir: string): Promise<string> {
  const file = clientCertificateFile(pkiDir);
  if (existsSync(file) && statSync(file).size > 0) return file;
  const cm = new OPCUACertificateManager({ rootFolder: pkiDir });
  await cm.initialize();
  const client = OPCUAClient.create({ applicationName: CLIENT_APPLICATION_NAME, clientCertificateManager: cm });
  try {
    await client.createDefaultCertificate();
  } finally {
    await client.disconnect().catch(() => undefined);
    await cm.dispose().catch(() => undefined);
  }
  return file;
}

function password(cfg: OpcuaClientConfig): string {
  const u = cfg.user;
  return u ? (u.password ?? process.env[u.passwordEnv ?? ""] ?? "") : "";
}

/**
 * The pool key: drivers share a session only when everything that shapes it is equal. The password
 * goes in as a hash so that the key (it may end up in a log line) does not carry it.
 */
export function sessionKey(endpoint: Pick<Endpoint, "url">, cfg: OpcuaClientConfig): string {
  const secret = cfg.user ? createHash("sha256").update(password(cfg)).digest("hex").slice(0, 16) : "";
  return [
    endpoint.url,
    `${cfg.securityPolicy}/${cfg.securityMode}`,
    cfg.user ? `user=${cfg.user.name}:${secret}` : "anonymous",
    `pki=${clientPkiDir(cfg)}`,
    `trust=${cfg.trustServerCertificate}`,
    `timeout=${cfg.sessionTimeoutMs}`,
    `connect=${cfg.connectAttempts}/${cfg.reconnect}/${cfg.reconnectMaxDelayMs}`,
  ].join("|");
}

function identity(cfg: OpcuaClientConfig): UserIdentityInfo {
  const u = cfg.user;
  if (!u) return { type: UserTokenType.Anonymous };
  return { type: UserTokenType.UserName, userName: u.name, password: password(cfg) };
}

/** A client and its session, shared through the endpoint pool; `isConnected` follows the secure channel. */
export class SharedSession {
  isConnected = true;
  /** true once node-opcua gave up or the session was closed: the pool entry is dropped */
  isClosed = false;
  private isClosing = false;
  private limits: Promise<OperationLimits> | null = null;

  constructor(
    readonly client: OPCUAClient,
    readonly session: ClientSession,
    onBroken: () => void,
    /** server-certificate trust decisions (drivers/opcua/trust.ts) not reported yet */
    private readonly trustNotes: TrustNote[] = [],
  ) {
    client.on("connection_lost", () => (this.isConnected = false));
    client.on("connection_reestablished", () => (this.isConnected = true));
    client.on("close", () => {
      this.isClosed = true;
      this.isConnected = false;
      // closed without our asking: the next driver to connect must get a new client
      if (!this.isClosing) onBroken();
    });
  }

  /** The server's operation limits, read once per session (drivers on it split their requests by them). */
  operationLimits(): Promise<OperationLimits> {
    this.limits ??= readLimits(this.session);
    return this.limits;
  }

  /** The trust decisions since the last call (a driver reports them as events). */
  takeTrustNotes(): TrustNote[] {
    return this.trustNotes.splice(0);
  }

  /** Closes the session and the client, each bounded: a server that is gone must not hold the caller. */
  async close(): Promise<void> {
    this.isClosing = true;
    await settlesWithin(this.session.close(), 1000);
    await settlesWithin(this.client.disconnect(), 2000);
  }
}

/** Rewrites node-opcua's connection errors as what the operator must do about them. */
export function explainConnectError(err: Error, cfg: OpcuaClientConfig): string {
  const m = err.message;
  const pkiDir = clientPkiDir(cfg);
  if (/BadSecurityChecksFailed|BadCertificateUntrusted|BadCertificateInvalid|rejected by server/.test(m) && cfg.securityMode !== "None" && !/server certificate/i.test(m)) {
    const code = /Bad\w+/.exec(m)?.[0] ?? "refused";
    return `the server refused the client certificate (${code}): it must trust ${clientCertificateFile(pkiDir)} (on most servers: move it from rejected/ to trusted/)`;
  }
  if (/certificate/i.test(m) && /server/i.test(m) && /(untrusted|not trusted|reject|invalid)/i.test(m)) {
    return `the server's certificate is not trusted: copy it from ${join(pkiDir, "rejected")} to ${join(pkiDir, "trusted", "certs")} or set trustServerCertificate for this driver only (${m.split("\n")[0]})`;
  }
  if (/BadIdentityToken|BadUserAccessDenied|user token policy/i.test(m)) {
    return `the server refused the user ${cfg.user ? `'${cfg.user.name}'` : "anonymous"}: ${m.split("\n")[0]}`;
  }
  return m.split("\n")[0] ?? m;
}

/**
 * Opens a client and a session. The first connection is tried `connectAttempts` times (then the
 * manager's backoff takes over); with `reconnect`, a connection lost later is retried by node-opcua
 * without limit, every reconnectMaxDelayMs at most, and its session and subscriptions restored (or
 * recreated on a server that restarted and forgot them).
 */
export async function openSession(endpoint: Pick<Endpoint, "url" | "timeoutMs">, cfg: OpcuaClientConfig, onBroken: () => void): Promise<SharedSession> {
  const pkiDir = clientPkiDir(cfg);
  await ensureClientCertificate(pkiDir);
  const notes: TrustNote[] = [];
  const client = OPCUAClient.create({
    applicationName: CLIENT_APPLICATION_NAME,
    endpointMustExist: false,
    securityPolicy: cfg.securityPolicy === "None" ? SecurityPolicy.None : SecurityPolicy.Basic256Sha256,
    securityMode: MessageSecurityMode[cfg.securityMode],
    // never node-opcua's automaticallyAcceptUnknownCertificate: it writes to the shared trusted/ folder
    clientCertificateManager: driverCertificateManager(pkiDir, cfg.trustServerCertificate, (n) => notes.push(n)),
    requestedSessionTimeout: cfg.sessionTimeoutMs,
    keepSessionAlive: true,
    connectionStrategy: { maxRetry: cfg.connectAttempts - 1, initialDelay: 250, maxDelay: cfg.reconnectMaxDelayMs },
    defaultTransactionTimeout: endpoint.timeoutMs * 10,
  });
  try {
    await client.connect(endpoint.url);
    // node-opcua repairs a lost connection only while maxRetry != 0 (and then without limit);
    // the first connection above was bounded by connectAttempts
    client.connectionStrategy.maxRetry = cfg.reconnect ? -1 : 0;
    const session = await client.createSession(identity(cfg));
    return new SharedSession(client, session, onBroken, notes);
  } catch (err) {
    await settlesWithin(client.disconnect(), 2000);
    throw err;
  }
}
