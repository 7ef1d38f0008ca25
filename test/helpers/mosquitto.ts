// A real MQTT 5 broker for tests: Debian's mosquitto 2.x on a free loopback port, with its own config
// file and persistence directory in a temp dir. It can be stopped (SIGTERM: clean, sessions saved;
// SIGKILL: a crash) and restarted on the same port, with optional users (mosquitto_passwd) and a TLS
// listener (certificates made with openssl). Never a mock, never skipped: missing binaries throw.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, tempDir } from "./index.ts";
import { Child } from "./process.ts";
import { closeLeftovers } from "./registry.ts";

const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p));
const PASSWD = "/usr/bin/mosquitto_passwd";

export class MosquittoMissingError extends Error {
  override name = "MosquittoMissingError";
  constructor(what: string) {
    super(`${what} not found: the MQTT tests need Debian's mosquitto 2.x (apt-get install -y mosquitto openssl; 'npm test' installs it as root)`);
  }
}

export interface MosquittoOptions {
  /** username -> password; when set, anonymous clients are refused */
  users?: Record<string, string>;
  /** also open a TLS listener with a fresh CA and server certificate */
  tls?: boolean;
  /** broker's message_size_limit in bytes (0: none) */
  messageSizeLimit?: number;
  /** more mosquitto.conf lines */
  extra?: string;
}

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
  /** a CA that did not sign the server certificate (for "bad certificate" tests) */
  otherCa: string;
}

export class Mosquitto {
  private child: Child | null = null;
  /** what the brokers of the previous runs printed */
  private earlier = "";

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly tlsPort: number | null,
    readonly tlsFiles: TlsFiles | null,
    private readonly cleanup: () => void,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get tlsUrl(): string {
    if (!this.tlsPort) throw new Error("this broker was started without tls: true");
    return `mqtts://localhost:${this.tlsPort}`;
  }

  get isRunning(): boolean {
    return this.child?.isRunning ?? false;
  }

  /** What the broker printed (its log goes to stderr), over its restarts. */
  get log(): string {
    return (this.earlier + (this.child?.output ?? "")).slice(-200_000);
  }

  static async start(opts: MosquittoOptions = {}): Promise<Mosquitto> {
    if (!MOSQUITTO) throw new MosquittoMissingError("/usr/sbin/mosquitto");
    await closeLeftovers();
    const tmp = tempDir("edge-mosquitto-");
    const dir = tmp.path;
    const port = await freePort();
    const tlsPort = opts.tls ? await freePort() : null;
    const lines = [
      `listener ${port} 127.0.0.1`,
      `allow_anonymous ${opts.users ? "false" : "true"}`,
      // as root mosquitto would switch to user 'mosquitto', who cannot read our private temp dir
      process.getuid?.() === 0 ? "user root" : "",
      "persistence true",
      `persistence_location ${dir}/`,
      // sessions and queued messages reach the disk at least every second (a SIGKILL loses at most that)
      "autosave_interval 1",
      "max_queued_messages 0",
      "max_inflight_messages 0",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      "log_type notice",
      "log_type information",
    ];
    if (opts.messageSizeLimit) lines.push(`message_size_limit ${opts.messageSizeLimit}`);
    if (opts.users) {
      if (!existsSync(PASSWD)) throw new MosquittoMissingError(PASSWD);
      const pw = join(dir, "passwd");
      writeFileSync(pw, "");
      for (const [user, password] of Object.entries(opts.users)) {
        const r = Bun.spawnSync([PASSWD, "-b", pw, user, password]);
        if (r.exitCode !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr.toString()}`);
      }
      lines.push(`password_file ${pw}`);
    }
    let tlsFiles: TlsFiles | null = null;
    if (tlsPort) {
      tlsFiles = makeCertificates(dir);
      lines.push(`listener ${tlsPort} 127.0.0.1`, `cafile ${tlsFiles.ca}`, `certfile ${tlsFiles.cert}`, `keyfile ${tlsFiles.key}`);
      if (!opts.users) lines.push("allow_anonymous true");
    }
    if (opts.extra) lines.push(opts.extra);
    writeFileSync(join(dir, "mosquitto.conf"), lines.join("\n") + "\n");
    const m = new Mosquitto(dir, port, tlsPort, tlsFiles, tmp.cleanup);
    await m.restart();
    return m;
  }

  /** Starts the broker (again) on the same port with the same persistence directory. */
  async restart(): Promise<void> {
    if (this.isRunning) return;
    this.earlier = this.log;
    // the binary was checked in start()
    this.child = new Child("mosquitto", [MOSQUITTO!, "-c", join(this.dir, "mosquitto.conf")]);
    await this.child.waitForPort(this.port, 15_000, 30);
  }

  /** Stops the broker: SIGTERM lets it save sessions and say goodbye, SIGKILL is a crash. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    await this.child?.stop(signal);
  }

  /** Stops the broker and removes its directory. */
  async close(): Promise<void> {
    await this.stop("SIGKILL");
    this.cleanup();
  }
}

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed (is Debian's openssl installed?): ${r.stderr.toString().slice(0, 400)}`);
}

/** A CA, a server certificate for localhost/127.0.0.1 signed by it, and an unrelated CA. */
function makeCertificates(dir: string): TlsFiles {
  const days = ["-days", "2"];
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=edge test CA", ...days], dir);
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.crt", "-subj", "/CN=someone else", ...days], dir);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], dir);
  writeFileSync(join(dir, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-extfile", "san.ext", ...days], dir);
  return { ca: join(dir, "ca.crt"), cert: join(dir, "server.crt"), key: join(dir, "server.key"), otherCa: join(dir, "other-ca.crt") };
}
