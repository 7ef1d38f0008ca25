// Open doors: what the running config lets someone do without credentials, said once at start-up as one
// warning line per door and one `security.open_door` event frame each (so the audit trail has it too).
// Pure over the config: the gateway decides what to do with the list (server/gateway.ts).
import { isLoopbackHost, type EventFrame } from "../schemas/index.ts";
import type { Config } from "./config.ts";

export type DoorId = "http_reads_open" | "console_logins_over_http" | "metrics_tag_labels" | "opcua_anonymous" | "modbus_slave_exposed" | "modbus_slave_writes_without_credentials";

export interface OpenDoor {
  door: DoorId;
  /** one line for the operator: what is open, to whom */
  message: string;
  /** how to close it (the README's "Listening interfaces" table says the same) */
  fix: string;
  /** the config values that open it */
  details: Record<string, unknown>;
}

/** The bridge sections are validated by the bridges; only the few fields read here are typed. */
interface OpcuaSection {
  enabled?: boolean;
  host?: string;
  port?: number;
  allowAnonymous?: boolean;
}
interface SlaveSection {
  enabled?: boolean;
  host?: string;
  port?: number;
  writeAllowlist?: string[];
}

export function authKeysConfigured(auth: Config["gateway"]["auth"]): boolean {
  return Boolean(auth.hs256Secret || auth.hs256SecretFile || auth.jwksFile);
}

/** Every door the config leaves open, in a stable order. */
export function openDoors(config: Config): OpenDoor[] {
  const g = config.gateway;
  const doors: OpenDoor[] = [];
  // console users make the gateway sign its own tokens: reads need one then (server/auth/session.ts)
  if (!authKeysConfigured(g.auth) && g.console.users.length === 0) {
    doors.push({
      door: "http_reads_open",
      message: `no auth keys configured: GET /api/tags answers anyone who reaches http://${g.http.host}:${g.http.port} (writes and SQL are refused)`,
      fix: "set auth.hs256Secret (or hs256SecretFile / jwksFile) in gateway.yml",
      details: { host: g.http.host, port: g.http.port },
    });
  }
  // the gateway speaks plain HTTP: beyond loopback, console passwords and tokens cross the network readable
  if (g.console.users.length > 0 && !isLoopbackHost(g.http.host)) {
    doors.push({
      door: "console_logins_over_http",
      message: `console logins (${g.console.users.map((u) => u.name).join(", ")}) on http://${g.http.host}:${g.http.port}: passwords and session tokens travel unencrypted to anyone on the path`,
      fix: "put a TLS reverse proxy in front and keep http.host on 127.0.0.1, and never keep the demo users (their passwords are published)",
      details: { host: g.http.host, port: g.http.port, users: g.console.users.map((u) => u.name) },
    });
  }
  if (g.metrics.tagLabels) {
    doors.push({
      door: "metrics_tag_labels",
      message: `metrics.tagLabels is on: GET /metrics (no token needed) names every tag written, on http://${g.http.host}:${g.http.port}`,
      fix: "set metrics.tagLabels: false, or keep /metrics behind a reverse proxy",
      details: { host: g.http.host, port: g.http.port },
    });
  }
  const ua = g.opcua as OpcuaSection;
  if (ua.enabled !== false && ua.allowAnonymous === true) {
    doors.push({
      door: "opcua_anonymous",
      message: `OPC UA server on ${ua.host}:${ua.port} accepts anonymous sessions: anyone who reaches it may browse, read and subscribe every tag (never write)`,
      fix: "set opcua.allowAnonymous: false and give readers opcua.users",
      details: { host: ua.host, port: ua.port },
    });
  }
  const mb = g.modbusSlave as SlaveSection;
  if (mb.enabled !== false && mb.host !== undefined && !isLoopbackHost(mb.host)) {
    doors.push({
      door: "modbus_slave_exposed",
      message: `Modbus slave listens on ${mb.host}:${mb.port} (beyond loopback): Modbus has no credentials, any master that reaches it reads every mapped tag`,
      fix: "set modbusSlave.host: 127.0.0.1, or modbusSlave.allowlist to the SCADA's addresses",
      details: { host: mb.host, port: mb.port },
    });
  }
  if (mb.enabled !== false && mb.writeAllowlist && mb.writeAllowlist.length > 0) {
    doors.push({
      door: "modbus_slave_writes_without_credentials",
      message: `Modbus masters at ${mb.writeAllowlist.join(", ")} may write setpoints without credentials (modbusSlave.writeAllowlist)`,
      fix: "narrow modbusSlave.writeAllowlist to the SCADA's addresses, or remove it to refuse every Modbus write",
      details: { writeAllowlist: mb.writeAllowlist },
    });
  }
  return doors;
}

export function openDoorEvent(d: OpenDoor, ts: number): EventFrame {
  return { kind: "event", type: "security.open_door", source: "gateway", ts, data: { door: d.door, message: d.message, fix: d.fix, ...d.details } };
}
