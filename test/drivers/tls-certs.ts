// Certificates for the TLS tests, made by Debian's openssl in a directory: a CA, another CA, a server
// certificate for localhost/127.0.0.1, the same server key with an expired certificate, and client
// certificates signed by the CA and by the other CA. openssl 3.0's `x509` cannot backdate, so the
// expired one is issued by `openssl ca` with explicit start and end dates.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type AddressInfo, type Socket } from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { tempDir } from "../helpers/index.ts";

function openssl(dir: string, args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
}

const SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1";

/** Writes ca.pem, other-ca.pem, server.pem/.key, expired.pem, client.pem/.key, client-other.pem into dir. */
export function makeCertificates(dir: string): void {
  mkdirSync(join(dir, "db"), { recursive: true });
  const req = (name: string, cn: string) => openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`]);
  const sign = (csr: string, ca: string, out: string, ext?: string) => {
    if (ext) writeFileSync(join(dir, "ext.cnf"), `${ext}\n`);
    openssl(dir, ["x509", "-req", "-in", `${csr}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${out}.pem`, "-days", "2", ...(ext ? ["-extfile", "ext.cnf"] : [])]);
  };
  openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Test PLC CA"]);
  openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=Other CA"]);
  req("server", "plc.local");
  sign("server", "ca", "server", SAN);
  req("client", "gateway");
  sign("client", "ca", "client");
  sign("client", "other-ca", "client-other");
  writeFileSync(join(dir, "db", "index.txt"), "");
  writeFileSync(join(dir, "db", "serial"), "01\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    `[ca]\ndefault_ca=d\n[d]\ndatabase=db/index.txt\nserial=db/serial\nnew_certs_dir=db\ndefault_md=sha256\npolicy=p\nx509_extensions=e\n[p]\ncommonName=supplied\n[e]\n${SAN}\n`,
  );
  openssl(dir, ["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "server.csr", "-out", "expired.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]);
}

/**
 * A TLS front on loopback for a plain TCP server (a Modbus server): requires a client certificate signed
 * by ca.pem, presents `cert` (server.pem or expired.pem). Restartable on the same port with another cert.
 */
export class TlsFront {
  port = 0;
  private server: tls.Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly dir: string,
    private readonly target: number,
  ) {}

  async start(cert = "server.pem"): Promise<void> {
    const r = (f: string) => readFileSync(join(this.dir, f));
    this.server = tls.createServer({ key: r("server.key"), cert: r(cert), ca: r("ca.pem"), requestCert: true, rejectUnauthorized: true }, (client) => {
      const upstream = connect(this.target, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => undefined).on("close", () => (this.sockets.delete(s), client.destroy(), upstream.destroy()));
      }
      client.pipe(upstream).pipe(client);
    });
    this.server.on("tlsClientError", () => undefined);
    await new Promise<void>((res) => this.server!.listen(this.port, "127.0.0.1", () => res()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
    this.server = null;
  }
}

/**
 * mosquitto.conf lines of a TLS listener on `port` that requires a client certificate signed by ca.pem
 * and presents live-server.pem (a copy of server.pem or expired.pem: swap it and restart the broker).
 */
export function mosquittoTlsListener(dir: string, port: number, cert = "server.pem"): string {
  copyFileSync(join(dir, cert), join(dir, "live-server.pem"));
  return [`listener ${port} 127.0.0.1`, `cafile ${join(dir, "ca.pem")}`, `certfile ${join(dir, "live-server.pem")}`, `keyfile ${join(dir, "server.key")}`, "require_certificate true"].join("\n");
}

/** A temp dir for a gateway whose certificates are made in `config/certs` (the paths the tests' YAML names). */
export function gatewayDirWithCertificates(): { dir: ReturnType<typeof tempDir>; certs: string } {
  const dir = tempDir();
  const certs = join(dir.path, "config", "certs");
  mkdirSync(certs, { recursive: true });
  makeCertificates(certs);
  return { dir, certs };
}
