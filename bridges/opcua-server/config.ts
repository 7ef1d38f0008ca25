// Config of the built-in OPC UA server: the `opcua:` section of gateway.yml. The gateway schema
// (schemas/config.ts) owns `enabled` and `port`; everything else is validated here.
import { Type, type Static } from "@sinclair/typebox";
import { ConfigError } from "../../schemas/errors.ts";
import { parseWithSchema } from "../../schemas/validate.ts";

export const Right = Type.Union([Type.Literal("read"), Type.Literal("write")]);
export type Right = Static<typeof Right>;

export const OpcuaUser = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    passwordHash: Type.String({
      minLength: 20,
      description: "hash of the password (argon2id/bcrypt, PHC string): `bun bridges/opcua-server/hash-password.ts` prints one; never the password itself",
    }),
    rights: Type.Array(Right, { default: ["read"], description: "read: browse, read, subscribe; write: also write setpoints" }),
  },
  { additionalProperties: false },
);
export type OpcuaUser = Static<typeof OpcuaUser>;

export const SecurityPolicyName = Type.Union([Type.Literal("None"), Type.Literal("Basic256Sha256")]);
export const SecurityModeName = Type.Union([Type.Literal("None"), Type.Literal("Sign"), Type.Literal("SignAndEncrypt")]);

export const OpcuaServerConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: true }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 4840 }),
    host: Type.String({ default: "127.0.0.1", description: "interface to listen on; 0.0.0.0: every IPv4 interface, '::' every interface" }),
    hostname: Type.Optional(
      Type.String({ description: "host name advertised in endpoint URLs and the server certificate; default: `host` when it is loopback, else this machine's name" }),
    ),
    resourcePath: Type.String({ default: "/UA/edge", description: "path of the endpoint URL: opc.tcp://host:port<resourcePath>" }),
    rootFolder: Type.String({ default: "Tags", minLength: 1, description: "folder under Objects holding the tag tree" }),
    securityPolicies: Type.Array(SecurityPolicyName, { default: ["None", "Basic256Sha256"], minItems: 1 }),
    securityModes: Type.Array(SecurityModeName, {
      default: ["None", "Sign", "SignAndEncrypt"],
      minItems: 1,
      description: "None is only offered with policy None; Sign/SignAndEncrypt with Basic256Sha256",
    }),
    allowAnonymous: Type.Boolean({ default: false, description: "anonymous sessions may browse, read and subscribe (never write)" }),
    users: Type.Array(OpcuaUser, { default: [] }),
    certificateUserRights: Type.Array(Right, {
      default: ["read", "write"],
      description: "rights of a session authenticated with a trusted X509 user certificate",
    }),
    pkiDir: Type.Optional(Type.String({ description: "PKI folder (own/, trusted/, rejected/, issuers/); default <dataDir>/pki/opcua-server" })),
    autoAcceptUnknownCertificates: Type.Boolean({
      default: false,
      description: "trust every client certificate (tests only); otherwise an unknown certificate lands in rejected/ until moved to trusted/",
    }),
    writeTimeoutMs: Type.Integer({ minimum: 1, default: 10_000, description: "how long a UA write waits for the PLC's acknowledgement (then Bad_Timeout)" }),
    commandTtlMs: Type.Integer({ minimum: 1, default: 30_000, description: "a command not executed by then is never executed" }),
    minimumSamplingIntervalMs: Type.Integer({ minimum: 0, default: 0, description: "0: monitored items report every change the log delivers" }),
    maxSessions: Type.Integer({ minimum: 1, default: 20, description: "sessions open at once; more are refused with BadTooManySessions (logged, counted)" }),
    maxSessionTimeoutMs: Type.Integer({
      minimum: 100,
      default: 60_000,
      description: "cap on the session timeout a client asks for: a client that vanishes without closing holds its session this long at most",
    }),
    maxConnections: Type.Integer({ minimum: 1, default: 50, description: "simultaneous TCP connections (secure channels)" }),
  },
  { additionalProperties: false },
);
export type OpcuaServerConfig = Static<typeof OpcuaServerConfig>;

/** Validates the `opcua:` section of gateway.yml; throws ConfigError("gateway.yml", "opcua.<path>", ...). */
export function parseOpcuaConfig(section: unknown, file = "gateway.yml"): OpcuaServerConfig {
  const cfg = parseWithSchema(OpcuaServerConfig, section, file, "opcua");
  const names = new Set<string>();
  cfg.users.forEach((u, i) => {
    if (names.has(u.name)) throw new ConfigError(file, `opcua.users[${i}].name`, `duplicate user '${u.name}'`);
    names.add(u.name);
  });
  return cfg;
}
