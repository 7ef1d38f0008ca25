// TLS for the gateway's client connections (tls+tcp:// endpoints of the Modbus driver, the MQTT uplink,
// the MQTT source): certificates read from their files at every connection attempt (a certificate fixed
// on disk is used at the next retry), and a failed handshake told as a person needs it: which
// certificate, and why (unknown CA, expired, hostname mismatch, our client certificate refused). Here,
// beside storage/time.ts, because drivers and bridges both need it and never import each other.
// Key files are read, never logged: messages name their paths only.
import { readFileSync } from "node:fs";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { isAbsolute, join } from "node:path";
import tls, { type TLSSocket } from "node:tls";
import type { TlsFiles } from "../schemas/tls.ts";

export type TlsFailure = "unknown_ca" | "expired" | "not_yet_valid" | "hostname_mismatch" | "client_cert_refused" | "client_cert_invalid" | "file" | "timeout" | "other";

/** A TLS connection that could not be set up; `reason` says why in a word (metrics, tests). */
export class TlsHandshakeError extends Error {
  override name = "TlsHandshakeError";
  constructor(
    message: string,
    readonly reason: TlsFailure,
    /** the setting whose file is at fault, when one is */
    readonly field?: "ca" | "cert" | "key",
  ) {
    super(message);
  }
}

/** The settings with their paths made absolute (relative ones start at the config dir). */
export function resolveTlsFiles(t: TlsFiles, dir: string): TlsFiles {
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : join(dir, p));
  const out: TlsFiles = { ...t };
  for (const k of ["ca", "cert", "key"] as const) if (t[k] !== undefined) out[k] = abs(t[k]);
  return out;
}

export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const WHAT = { ca: "CA file", cert: "client certificate", key: "client key" } as const;

/**
 * Reads the files now (each attempt: a fixed file is picked up); a missing or unparsable file, a key that is not the
 * client certificate's, or a client certificate out of its validity at `checkAt` (null: not checked) is
 * a TlsHandshakeError naming it.
 */
export function readTlsMaterial(t: TlsFiles, checkAt: number | null = Date.now()): TlsMaterial {
  const out: TlsMaterial = {};
  for (const k of ["ca", "cert", "key"] as const) {
    const path = t[k];
    if (path === undefined) continue;
    try {
      out[k] = readFileSync(path);
    } catch (e) {
      throw new TlsHandshakeError(`cannot read the ${WHAT[k]} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, "file", k);
    }
  }
  if ((out.cert === undefined) !== (out.key === undefined)) throw new TlsHandshakeError(`a client certificate needs both cert and key (only ${out.cert ? `cert ${t.cert}` : `key ${t.key}`} is set)`, "file", out.cert ? "key" : "cert");
  if (out.ca) checkCa(out.ca, t.ca!);
  if (out.cert && out.key) checkKeyPair(out.cert, out.key, t);
  if (out.cert && checkAt !== null) checkClientCertificate(out.cert, t.cert!, checkAt);
  return out;
}

/** A CA file without a certificate would make the TLS library throw "Invalid CA" where the socket is opened. */
function checkCa(pem: Buffer, path: string): void {
  try {
    tls.createSecureContext({ ca: pem });
  } catch (e) {
    throw new TlsHandshakeError(`the CA file ${path} holds no PEM certificate: ${(e as Error).message}`, "file", "ca");
  }
}

/**
 * The key must be the certificate's: a pair renewed by halves (a new certificate, the old key) would make
 * the TLS library throw a bare "KEY_VALUES_MISMATCH" from inside whatever opens the socket (mqtt.js's
 * reconnect timer, where it escaped as an uncaught exception and ended the uplink's reconnecting).
 */
function checkKeyPair(cert: Buffer, key: Buffer, t: TlsFiles): void {
  const x = parseClientCertificate(cert, t.cert!);
  let matches: boolean;
  try {
    matches = x.checkPrivateKey(createPrivateKey(key));
  } catch {
    // the library's message may quote the file's first bytes: name the path only
    throw new TlsHandshakeError(`the client key ${t.key} is not a PEM private key (or is encrypted)`, "client_cert_invalid", "key");
  }
  if (!matches) throw new TlsHandshakeError(`the client key ${t.key} does not belong to the client certificate ${t.cert} (one of the pair was replaced without the other)`, "client_cert_invalid", "key");
}

function parseClientCertificate(pem: Buffer, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new TlsHandshakeError(`the client certificate ${path} is not a PEM certificate: ${(e as Error).message}`, "client_cert_invalid", "cert");
  }
}

/** Our own certificate out of its validity is refused by any server: say so before trying. */
function checkClientCertificate(pem: Buffer, path: string, nowMs: number): void {
  const x = parseClientCertificate(pem, path);
  if (Date.parse(x.validTo) < nowMs) throw new TlsHandshakeError(`the client certificate ${path} expired on ${x.validTo}`, "client_cert_invalid", "cert");
  if (Date.parse(x.validFrom) > nowMs) throw new TlsHandshakeError(`the client certificate ${path} is not valid before ${x.validFrom}`, "client_cert_invalid", "cert");
}

const UNKNOWN_CA = new Set(["SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "CERT_UNTRUSTED", "CERT_SIGNATURE_FAILURE"]);

/** true when `err` is a failure of the TLS layer (not a refused TCP connection or a timeout). */
export function isTlsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  return UNKNOWN_CA.has(code) || code.startsWith("CERT_") || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_");
}

/** What went wrong in a handshake with `target` (host:port), naming the certificate at fault. */
export function explainTlsError(err: unknown, target: string, t: TlsFiles): TlsHandshakeError {
  if (err instanceof TlsHandshakeError) return err;
  const e = err as Error & { code?: string; reason?: string };
  const code = e.code ?? "";
  const head = `TLS handshake with ${target} failed`;
  const cas = t.ca ? `the CA file ${t.ca}` : "the system's CAs";
  if (UNKNOWN_CA.has(code)) return new TlsHandshakeError(`${head}: unknown CA: the server's certificate is not signed by ${cas} (${code})`, "unknown_ca");
  if (code === "CERT_HAS_EXPIRED") return new TlsHandshakeError(`${head}: the server's certificate has expired (${code})`, "expired");
  if (code === "CERT_NOT_YET_VALID") return new TlsHandshakeError(`${head}: the server's certificate is not valid yet (${code})`, "not_yet_valid");
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return new TlsHandshakeError(`${head}: hostname mismatch: ${e.reason ?? e.message}${t.servername ? "" : " (set tls.servername to the name the certificate carries)"}`, "hostname_mismatch");
  // the server's alert about our certificate: required, unknown CA, bad, expired, revoked ...
  if (/ALERT_(CERTIFICATE|UNKNOWN_CA|BAD_CERTIFICATE|HANDSHAKE_FAILURE|ACCESS_DENIED)/.test(code)) {
    return new TlsHandshakeError(`${head}: the server refused our client certificate (${t.cert ? `cert ${t.cert}` : "none configured: set tls.cert and tls.key"}): ${code}`, "client_cert_refused");
  }
  return new TlsHandshakeError(`${head}: ${e.message}${code ? ` (${code})` : ""}`, "other");
}

export interface TlsConnectOptions {
  host: string;
  port: number;
  timeoutMs: number;
  tls: TlsFiles;
}

/**
 * Opens a TLS connection and resolves once it is usable. With TLS 1.3 the server checks our certificate
 * after the handshake has completed on our side: its refusal comes as an alert, or a bare close, one
 * round trip later. Waiting that long (at most a quarter of the timeout, 250 ms) turns it into a clear
 * error here rather than a broken first request.
 */
export function tlsConnect(o: TlsConnectOptions): Promise<TLSSocket> {
  const target = `${o.host}:${o.port}`;
  let material: TlsMaterial;
  try {
    material = readTlsMaterial(o.tls);
  } catch (e) {
    return Promise.reject(e);
  }
  const servername = o.tls.servername ?? (isIP(o.host) ? undefined : o.host);
  return new Promise<TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: o.host, port: o.port, ...material, ...(servername ? { servername } : {}), rejectUnauthorized: o.tls.rejectUnauthorized });
    let secure = false;
    let settled = false;
    const end = () => {
      settled = true;
      clearTimeout(timer);
      s.off("error", onError);
      s.off("close", onClose);
    };
    const fail = (e: TlsHandshakeError) => {
      if (settled) return;
      end();
      s.destroy();
      reject(e);
    };
    const onError = (err: Error) => fail(isTlsError(err) || secure ? explainTlsError(err, target, o.tls) : new TlsHandshakeError(err.message, "other"));
    const onClose = () =>
      fail(
        secure
          ? new TlsHandshakeError(`TLS handshake with ${target} failed: the server closed the connection right after the handshake: it refused our client certificate (${o.tls.cert ? `cert ${o.tls.cert}` : "none configured: set tls.cert and tls.key"})`, "client_cert_refused")
          : new TlsHandshakeError(`TLS handshake with ${target} failed: the connection closed during the handshake`, "other"),
      );
    const timer = setTimeout(() => fail(new TlsHandshakeError(`TLS handshake with ${target} failed: no answer within ${o.timeoutMs} ms`, "timeout")), o.timeoutMs);
    s.on("error", onError);
    s.on("close", onClose);
    s.once("secureConnect", () => {
      secure = true;
      const ready = () => {
        if (settled) return;
        end();
        resolve(s);
      };
      if (s.getProtocol() === "TLSv1.3") setTimeout(ready, Math.min(250, o.timeoutMs / 4));
      else ready();
    });
  });
}
