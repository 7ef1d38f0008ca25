// The frames of the event log. Every reading, command, acknowledgement and event is one of these,
// appended to the log and given an offset there. Types come from the schemas (Static<>), never
// from hand-written interfaces.
import { Type, type Static } from "@sinclair/typebox";
import { AckCode } from "./acks.ts";

/** A tag value. 64-bit integers travel as bigint in memory and as decimal strings in JSON. */
export const Value = Type.Union([Type.Number(), Type.Boolean(), Type.String(), Type.Null(), Type.BigInt()], {
  description: "number | boolean | string | null; 64-bit integers as bigint (JSON: decimal string)",
});
export type Value = Static<typeof Value>;

const Micros = (description: string) => Type.Number({ description: `${description}, microseconds since the Unix epoch` });

export const DataFrame = Type.Object(
  {
    kind: Type.Literal("data"),
    tag: Type.String({ minLength: 1 }),
    value: Value,
    ts: Micros("source timestamp"),
    quality: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: "OPC UA StatusCode (see schemas/quality.ts)" }),
    source: Type.String({ description: "id of the driver or bridge that produced the reading" }),
  },
  { $id: "DataFrame" },
);
export type DataFrame = Static<typeof DataFrame>;

export const Origin = Type.Union([
  Type.Literal("rest"),
  Type.Literal("mqtt"),
  Type.Literal("opcua"),
  Type.Literal("modbus"),
  Type.Literal("rule"),
  Type.Literal("nats"),
]);
export type Origin = Static<typeof Origin>;

export const CmdFrame = Type.Object(
  {
    kind: Type.Literal("cmd"),
    id: Type.String({ minLength: 1, description: "command id, unique" }),
    tag: Type.String({ minLength: 1 }),
    value: Value,
    origin: Origin,
    actor: Type.String({ description: "who asked: JWT sub, MQTT client id, UA user" }),
    tenant: Type.String(),
    ts: Micros("time the command was accepted"),
    expiresAt: Micros("after this instant the command is never executed"),
  },
  { $id: "CmdFrame" },
);
export type CmdFrame = Static<typeof CmdFrame>;

export const AckStatus = Type.Union([Type.Literal("ok"), Type.Literal("error"), Type.Literal("expired")]);
export type AckStatus = Static<typeof AckStatus>;

export const AckFrame = Type.Object(
  {
    kind: Type.Literal("ack"),
    cmd: Type.String({ description: "id of the command acknowledged" }),
    tag: Type.String(),
    ok: Type.Boolean(),
    status: AckStatus,
    code: AckCode,
    error: Type.Optional(Type.String({ description: "for people only: bridges map `code`, never this text" })),
    ts: Micros("time of the acknowledgement"),
    source: Type.String({ description: "driver that executed (or refused) the command" }),
  },
  { $id: "AckFrame" },
);
export type AckFrame = Static<typeof AckFrame>;

export const EventType = Type.String({
  description: "driver.state | alarm.raised | alarm.cleared | config.reloaded | plugin.loaded | ...",
});

export const EventFrame = Type.Object(
  {
    kind: Type.Literal("event"),
    type: EventType,
    source: Type.String(),
    tag: Type.Optional(Type.String()),
    ts: Micros("time of the event"),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { $id: "EventFrame" },
);
export type EventFrame = Static<typeof EventFrame>;

export const Frame = Type.Union([DataFrame, CmdFrame, AckFrame, EventFrame]);
export type Frame = DataFrame | CmdFrame | AckFrame | EventFrame;
export type FrameKind = Frame["kind"];

/** A frame as read back from the log: committed, with its offset and commit time. */
export type Logged<F extends Frame = Frame> = F & { offset: number; loggedAt: number };

export const nowMicros = (): number => Date.now() * 1000;
