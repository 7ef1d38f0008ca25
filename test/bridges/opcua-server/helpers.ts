// Shared pieces of the OPC UA server tests: a node-opcua client with its own PKI in a temp folder.
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

export interface UaConnection {
  client: OPCUAClient;
  session: ClientSession;
  close(): Promise<void>;
}

export interface ConnectOptions {
  pkiDir: string;
  user?: { name: string; password: string };
  identity?: UserIdentityInfo;
  mode?: "None" | "Sign" | "SignAndEncrypt";
}

/** A client (its certificate under pkiDir, created on first use) and a session on `url`. */
export async function connect(url: string, o: ConnectOptions): Promise<UaConnection> {
  const mode = o.mode ?? "None";
  const client = OPCUAClient.create({
    applicationName: "edge-test-client",
    endpointMustExist: false,
    securityMode: MessageSecurityMode[mode],
    securityPolicy: mode === "None" ? SecurityPolicy.None : SecurityPolicy.Basic256Sha256,
    connectionStrategy: { maxRetry: 0, initialDelay: 50, maxDelay: 100 },
    // the test client trusts the gateway's self-signed server certificate
    clientCertificateManager: new OPCUACertificateManager({ rootFolder: join(o.pkiDir, "client"), automaticallyAcceptUnknownCertificate: true }),
    requestedSessionTimeout: 20_000,
  });
  await client.connect(url);
  try {
    const identity: UserIdentityInfo =
      o.identity ?? (o.user ? { type: UserTokenType.UserName, userName: o.user.name, password: o.user.password } : { type: UserTokenType.Anonymous });
    const session = await client.createSession(identity);
    return {
      client,
      session,
      async close() {
        await session.close().catch(() => undefined);
        await client.disconnect();
      },
    };
  } catch (e) {
    await client.disconnect();
    throw e;
  }
}

/** gateway.yml `opcua:` users block with hashed passwords (bcrypt with a low cost: fast tests). */
export async function usersYaml(users: { name: string; password: string; rights: string[] }[]): Promise<string> {
  const lines = ["  users:"];
  for (const u of users) {
    const hash = await Bun.password.hash(u.password, { algorithm: "bcrypt", cost: 4 });
    lines.push(`    - { name: ${u.name}, passwordHash: "${hash}", rights: [${u.rights.join(", ")}] }`);
  }
  return lines.join("\n");
}
