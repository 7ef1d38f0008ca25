// Which server certificates an OPC UA client driver accepts. node-opcua's
// `automaticallyAcceptUnknownCertificate` "accepts" by copying the certificate into <pkiDir>/trusted/certs,
// which every other driver on that folder (the default pkiDir is shared) then trusts too, for good.
// So that flag is never used here, and nothing this file does writes to a trust list:
// - strict (default): node-opcua's check against trusted/; an unknown certificate is filed in rejected/
//   for the operator. Trusting is an explicit act: moving the file into trusted/certs by hand.
// - trustServerCertificate: a certificate that is only untrusted (unknown, or in rejected/) is accepted
//   for this client alone, in memory, after a read-only verification; an expired or broken one is still
//   refused. Each acceptance and each certificate first found trusted becomes a note the driver reports.
import { createHash } from "node:crypto";
import { OPCUACertificateManager, StatusCodes, type StatusCode } from "node-opcua";

type Certificate = Buffer;

export interface TrustNote {
  /** accepted_untrusted: let through by trustServerCertificate; trusted: found in trusted/certs (moved there by someone) */
  kind: "accepted_untrusted" | "trusted";
  /** SHA-1 thumbprint (hex) of the server's certificate, as file names and UA tools show it */
  thumbprint: string;
  pkiDir: string;
  /** trusted: this process had refused it before (an operator trusted it since) */
  wasRefused?: boolean;
}

/** Statuses that only say "not in trusted/": what trustServerCertificate waives, and nothing else. */
const WAIVABLE = [StatusCodes.BadCertificateUntrusted, StatusCodes.BadCertificateRevocationUnknown];

/** Per PKI folder, the thumbprints this process saw refused and saw trusted (to report each change once). */
const seen = new Map<string, { refused: Set<string>; trusted: Set<string> }>();

const thumbprintOf = (der: Certificate) => createHash("sha1").update(der).digest("hex");

/**
 * The client certificate manager of one session: its own certificate from `pkiDir/own`, server
 * certificates checked as described above. `note` receives every trust decision worth reporting.
 */
export function driverCertificateManager(pkiDir: string, trustServerCertificate: boolean, note: (n: TrustNote) => void): OPCUACertificateManager {
  const cm = new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: false });
  const strictCheck = cm.checkCertificate.bind(cm) as (chain: Certificate | Certificate[]) => Promise<StatusCode>;
  const book = seen.get(pkiDir) ?? seen.set(pkiDir, { refused: new Set(), trusted: new Set() }).get(pkiDir)!;

  const check = async (chain: Certificate | Certificate[]): Promise<StatusCode> => {
    const certs = Array.isArray(chain) ? chain : [chain];
    const thumbprint = thumbprintOf(certs[0]!);
    if (trustServerCertificate) {
      // verifyCertificate only reads the PKI folder; checkCertificate would file the certificate somewhere
      const status = StatusCodes[await cm.verifyCertificate(Buffer.concat(certs), { acceptCertificateWithValidIssuerChain: true })];
      if (!WAIVABLE.some((w) => w.equals(status))) return status;
      note({ kind: "accepted_untrusted", thumbprint, pkiDir });
      return StatusCodes.Good;
    }
    const status = await strictCheck(chain);
    if (!status.equals(StatusCodes.Good)) book.refused.add(thumbprint);
    else if (!book.trusted.has(thumbprint)) {
      book.trusted.add(thumbprint);
      note({ kind: "trusted", thumbprint, pkiDir, wasRefused: book.refused.delete(thumbprint) });
    }
    return status;
  };
  // node-opcua calls checkCertificate(chain) and awaits it; the callback form is kept for its other callers
  cm.checkCertificate = ((chain: Certificate | Certificate[], callback?: (err: Error | null, s?: StatusCode) => void) => {
    const p = check(chain);
    if (!callback) return p;
    p.then((s) => callback(null, s), (e: Error) => callback(e));
  }) as typeof cm.checkCertificate;
  return cm;
}
