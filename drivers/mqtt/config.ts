// Config of the MQTT source driver: which device topics to subscribe to and how a payload becomes a tag
// value. The endpoint (endpoints.yml) is the broker: mqtt://host:1883 or mqtts://host:8883.
import { Type, type Static } from "@sinclair/typebox";

export const MqttMapping = Type.Object(
  {
    topic: Type.String({ minLength: 1, description: "topic filter, with + (one level) and # (the rest) wildcards" }),
    tag: Type.String({ minLength: 1, description: "tag name; {1}, {2} ... are the wildcard levels of the topic" }),
    path: Type.String({ default: "", description: "dot path to the value in the payload (a.b.0.c); empty: the payload itself" }),
    timestamp: Type.Optional(Type.String({ description: "dot path of the source timestamp (default: time of arrival)" })),
    timestampUnit: Type.Union([Type.Literal("ms"), Type.Literal("us"), Type.Literal("s"), Type.Literal("iso")], { default: "ms" }),
    quality: Type.Optional(Type.String({ description: "dot path of the quality: StatusCode number, name (Good, Bad_...) or boolean good" })),
    payload: Type.Optional(Type.Union([Type.Literal("json"), Type.Literal("msgpack")])),
    decoder: Type.Optional(
      Type.String({
        minLength: 1,
        description: "name of a decoder plugin that turns the payload into frames (path, timestamp, quality and payload are not used); `tag` is then a template where {tag} is the decoded tag",
      }),
    ),
  },
  { additionalProperties: false },
);
export type MqttMapping = Static<typeof MqttMapping>;

export const MqttSourceConfig = Type.Object(
  {
    url: Type.Optional(Type.String({ pattern: "^mqtts?://", description: "broker URL when the driver has no endpoint" })),
    clientId: Type.Optional(Type.String({ minLength: 1, description: "default edge-src-<hostname>-<driver id>: stable, so the broker keeps our session" })),
    sessionExpirySec: Type.Integer({
      minimum: 0,
      default: 3600,
      description: "how long the broker keeps our session (subscriptions, unacknowledged messages) while we are away; 0: a clean session each time",
    }),
    username: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    protocolVersion: Type.Union([Type.Literal(5), Type.Literal(4)], { default: 5 }),
    qos: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)], { default: 1 }),
    receiveMaximum: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: 1000,
      description:
        "QoS 1/2 messages that wait for their commit at once (they share group commits); MQTT 5 announces it to the broker as Receive Maximum. 1: one message per commit",
    }),
    payload: Type.Union([Type.Literal("json"), Type.Literal("msgpack")], { default: "json" }),
    mappings: Type.Array(MqttMapping, { minItems: 1 }),
  },
  { additionalProperties: false },
);
export type MqttSourceConfig = Static<typeof MqttSourceConfig>;
