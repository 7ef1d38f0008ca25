// Clients that each open a session asking for a 20-minute session timeout, say "ready" on stdout and
// then keep it alive (as a SCADA station does) until the sessions test kills the process with SIGKILL,
// as clients that vanish without closing. Kept alive, a session never ends before the kill, however
// slowly a loaded machine starts the other holders: the cap counts from the last ping.
// Usage: bun session-holder.ts <endpoint url> <client pki dir> [clients, default 1]
import { OPCUAClient, OPCUACertificateManager } from "node-opcua";

const [url, pkiDir, count = "1"] = process.argv.slice(2) as [string, string, string?];
const certificates = new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: true });
// one connection and one session per client, as separate SCADA stations would have
async function holdOne(): Promise<void> {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: certificates,
    requestedSessionTimeout: 20 * 60_000,
    keepSessionAlive: true,
  });
  await client.connect(url);
  await client.createSession();
}
// the first alone: clients that start together would each try to create the client certificate
await holdOne();
await Promise.all(Array.from({ length: Number(count) - 1 }, holdOne));
process.stdout.write("ready\n");
setInterval(() => undefined, 1 << 30);
