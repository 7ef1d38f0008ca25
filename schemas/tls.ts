// TLS settings of a client connection (a tls+tcp:// endpoint, the MQTT uplink, the MQTT source): the
// CA that signed the server's certificate, and our client certificate and key, as PEM files. Paths are
// relative to the config dir. The files are read at every connection attempt (storage/tls.ts), so a
// certificate fixed on disk is used at the next retry without a restart.
import { Type, type Static } from "@sinclair/typebox";

export const TlsFiles = Type.Object(
  {
    ca: Type.Optional(Type.String({ minLength: 1, description: "PEM file of the CA(s) that signed the server's certificate (relative to the config dir); default: the system's CAs" })),
    cert: Type.Optional(Type.String({ minLength: 1, description: "our client certificate, PEM (for servers that require one)" })),
    key: Type.Optional(Type.String({ minLength: 1, description: "the client certificate's private key, PEM (never logged)" })),
    servername: Type.Optional(Type.String({ minLength: 1, description: "the name the server's certificate must carry (default: the URL's host)" })),
    rejectUnauthorized: Type.Boolean({ default: true, description: "false accepts any server certificate: for tests only" }),
  },
  { additionalProperties: false, description: "TLS of a client connection (tls+tcp:// endpoints, MQTT): CA, client certificate and key files, read at every connection attempt" },
);
export type TlsFiles = Static<typeof TlsFiles>;
