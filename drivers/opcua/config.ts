// Config of the OPC UA client driver (drivers.yml `config:`) and the tag address it reads:
// variables.yml `address: { nodeId: "ns=1;s=Boiler.Temperature" }`.
import { Type, type Static } from "@sinclair/typebox";

export const OpcuaClientConfig = Type.Object(
  {
    mode: Type.Union([Type.Literal("subscription"), Type.Literal("poll")], {
      default: "subscription",
      description: "subscription: the server reports changes (monitored items); poll: the driver reads every group at its interval",
    }),
    samplingIntervalMs: Type.Number({ minimum: 0, default: 250, description: "how often the server samples each node (subscription)" }),
    publishingIntervalMs: Type.Number({ minimum: 10, default: 250, description: "how often the server sends the changes it collected (subscription)" }),
    queueSize: Type.Integer({ minimum: 1, default: 10, description: "changes kept per node between two publishes" }),
    intervalMs: Type.Number({ minimum: 10, default: 1000, description: "poll interval of groups not listed in `groups` (poll)" }),
    groups: Type.Record(Type.String(), Type.Number({ minimum: 10 }), { default: {}, description: "poll group name -> interval in ms (poll)" }),
    securityPolicy: Type.Union([Type.Literal("None"), Type.Literal("Basic256Sha256")], { default: "None" }),
    securityMode: Type.Union([Type.Literal("None"), Type.Literal("Sign"), Type.Literal("SignAndEncrypt")], { default: "None" }),
    user: Type.Optional(
      Type.Object(
        {
          name: Type.String({ minLength: 1 }),
          password: Type.Optional(Type.String({ description: "prefer passwordEnv: the password in plain text in drivers.yml" })),
          passwordEnv: Type.Optional(Type.String({ description: "name of the environment variable holding the password" })),
        },
        { additionalProperties: false },
      ),
    ),
    pkiDir: Type.Optional(Type.String({ description: "client PKI (own certificate, trusted server certificates); default <EDGE_DATA_DIR or ./data>/pki/opcua-client" })),
    trustServerCertificate: Type.Boolean({
      default: false,
      description: "accept an unknown server certificate (else copy it into <pkiDir>/trusted/certs)",
    }),
    sessionTimeoutMs: Type.Integer({ minimum: 1000, default: 60_000 }),
    reconnectAttempts: Type.Integer({
      minimum: 0,
      default: 5,
      description: "node-opcua reconnection attempts after a connection loss, then the read loop ends and the manager restarts it with backoff",
    }),
  },
  { additionalProperties: false },
);
export type OpcuaClientConfig = Static<typeof OpcuaClientConfig>;
