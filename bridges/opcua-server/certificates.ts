// The client certificates of the OPC UA server's PKI folder, for the console: the trusted and rejected
// application instance certificates (and X509 user certificates), each with subject, thumbprint and
// validity, and "trust" for a rejected one. Trusting goes through the server's own certificate manager
// (node-opcua-pki's trustCertificate), not a file move behind its back: the manager keeps an index of
// both folders, and only its own move makes the next connect of that client accepted at once.
import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { OPCUACertificateManager } from "node-opcua";
import type { Pki } from "./security.ts";

export type CertificateStore = "trusted" | "rejected";
/** application: a client's instance certificate (the secure channel); user: an X509 identity token */
export type CertificateKind = "application" | "user";

export interface ClientCertificate {
  kind: CertificateKind;
  store: CertificateStore;
  /** SHA-1 of the DER, lower-case hex: what node-opcua and UaExpert show as the thumbprint */
  thumbprint: string;
  subject: string;
  issuer: string;
  /** the subjectAltName's URI: the client's ApplicationUri */
  applicationUri: string | null;
  notBefore: string;
  notAfter: string;
  expired: boolean;
  file: string;
}

export class UnknownCertificate extends Error {
  override name = "UnknownCertificate";
}

/** DER bytes of a certificate file (.der, or the first certificate of a .pem). */
function derOf(path: string): Buffer | null {
  const bytes = readFileSync(path);
  const pem = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(bytes.toString("latin1"));
  return pem ? Buffer.from(pem[1]!.replace(/\s+/g, ""), "base64") : bytes;
}

function describe(kind: CertificateKind, store: CertificateStore, dir: string, file: string): { info: ClientCertificate; der: Buffer } | null {
  let der: Buffer | null;
  let x: X509Certificate;
  try {
    der = derOf(join(dir, file));
    if (!der) return null;
    x = new X509Certificate(der);
  } catch {
    return null; // not a certificate (a CRL, a stray file): not listed
  }
  const uri = /URI:([^,\s]+)/.exec(x.subjectAltName ?? "")?.[1] ?? null;
  const notAfter = new Date(x.validTo);
  return {
    der,
    info: {
      kind,
      store,
      thumbprint: x.fingerprint.replaceAll(":", "").toLowerCase(),
      subject: x.subject.replaceAll("\n", ", "),
      issuer: x.issuer.replaceAll("\n", ", "),
      applicationUri: uri,
      notBefore: new Date(x.validFrom).toISOString(),
      notAfter: notAfter.toISOString(),
      expired: notAfter.getTime() < Date.now(),
      file,
    },
  };
}

function storeOf(kind: CertificateKind, store: CertificateStore, cm: OPCUACertificateManager) {
  const dir = store === "trusted" ? cm.trustedFolder : cm.rejectedFolder;
  let files: string[] = [];
  try {
    files = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    // the folder is created by the manager's initialize(); before it, the store is empty
  }
  return files.map((f) => describe(kind, store, dir, f)).filter((c) => c !== null);
}

function managers(pki: Pki): [CertificateKind, OPCUACertificateManager][] {
  return [
    ["application", pki.server],
    ["user", pki.users],
  ];
}

/** Every trusted and rejected client certificate of the PKI folder, rejected first (those wait for a decision). */
export function listCertificates(pki: Pki): ClientCertificate[] {
  return managers(pki).flatMap(([kind, cm]) => [...storeOf(kind, "rejected", cm), ...storeOf(kind, "trusted", cm)].map((c) => c.info));
}

/** Moves the rejected certificate with this thumbprint to the trusted store; throws UnknownCertificate when none has it. */
export async function trustCertificate(pki: Pki, thumbprint: string): Promise<ClientCertificate> {
  const wanted = thumbprint.replaceAll(":", "").toLowerCase();
  for (const [kind, cm] of managers(pki)) {
    const found = storeOf(kind, "rejected", cm).find((c) => c.info.thumbprint === wanted);
    if (!found) continue;
    await cm.trustCertificate(found.der);
    return { ...found.info, store: "trusted" };
  }
  const trusted = listCertificates(pki).find((c) => c.thumbprint === wanted);
  if (trusted) return trusted; // trusting a trusted certificate again changes nothing
  throw new UnknownCertificate(`no rejected client certificate with thumbprint ${wanted}`);
}
