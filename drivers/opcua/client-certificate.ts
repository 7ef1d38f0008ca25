// Creates (if missing) the OPC UA client driver's certificate and prints its file, to hand to the
// server's operator before the first connection:
//   bun drivers/opcua/client-certificate.ts [pkiDir]     (default <EDGE_DATA_DIR or ./data>/pki/opcua-client)
import { clientPkiDir, ensureClientCertificate } from "./session.ts";

const pkiDir = process.argv[2] ?? clientPkiDir({});
console.log(await ensureClientCertificate(pkiDir));
