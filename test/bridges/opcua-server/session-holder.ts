// A client that opens a session asking for a 20-minute session timeout, says "ready" on stdout and
// then does nothing: the sessions test kills it with SIGKILL, as a client that vanishes without closing.
// Usage: bun session-holder.ts <endpoint url> <client pki dir>
import { OPCUAClient, OPCUACertificateManager } from "node-opcua";

const [url, pkiDir] = process.argv.slice(2) as [string, string];
const client = OPCUAClient.create({
  endpointMustExist: false,
  connectionStrategy: { maxRetry: 0 },
  clientCertificateManager: new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: true }),
  requestedSessionTimeout: 20 * 60_000,
});
await client.connect(url);
await client.createSession();
process.stdout.write("ready\n");
setInterval(() => undefined, 1 << 30);
