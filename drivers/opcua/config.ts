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
    keepAliveCount: Type.Integer({
      minimum: 1,
      default: 10,
      description: "publishing intervals without a change after which the server sends a keep-alive (subscription): the silence bound is derived from it",
    }),
    silenceTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 100,
        description:
          "a connected server that sends no publish response (data or keep-alive; subscription) or answers no read (poll) for this long is taken as hung: every tag goes Bad_Timeout and the driver reconnects. Default: subscription 2 x publishingIntervalMs x keepAliveCount (as revised by the server) + 1000 ms; poll 2 x the endpoint's timeoutMs + 1000 ms. Subscription: until the server's first publish after the monitored items are created, this + twice the time their creation took",
      }),
    ),
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
    pkiDir: Type.Optional(
      Type.String({
        description:
          "client PKI folder: own/certs/client_certificate.pem (created on first connect; the server must trust it for Sign/SignAndEncrypt), trusted/certs (server certificates this client trusts), rejected/. Default <gateway dataDir>/pki/opcua-client",
      }),
    ),
    trustServerCertificate: Type.Boolean({
      default: false,
      description:
        "accept an untrusted server certificate for this driver only, in memory: nothing is written to <pkiDir>/trusted, so other drivers on the same pkiDir stay strict (without it, an unknown certificate lands in <pkiDir>/rejected until moved into <pkiDir>/trusted/certs by hand)",
    }),
    sessionTimeoutMs: Type.Integer({ minimum: 1000, default: 60_000 }),
    connectAttempts: Type.Integer({
      minimum: 1,
      default: 3,
      description: "tries of the first connection before connect fails and the manager restarts the driver with backoff",
    }),
    reconnect: Type.Boolean({
      default: true,
      description:
        "after a connection loss node-opcua reconnects (without limit) and restores the session and subscriptions; false: the read loop ends and the manager restarts the driver with backoff",
    }),
    reconnectMaxDelayMs: Type.Integer({ minimum: 100, default: 5000, description: "longest wait between two connection attempts" }),
  },
  { additionalProperties: false },
);
export type OpcuaClientConfig = Static<typeof OpcuaClientConfig>;
