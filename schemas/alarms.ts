// The alarm contract of the log: every alarm transition is an EventFrame, and other parts of the gateway
// (the mapping layer in drivers/, user rules) ask for an alarm by appending a request event, never by
// calling the alarm engine. The engine (bridges/rules) is a log consumer: it turns requests and tag
// readings into ISA-18.2 states and appends one transition event per change, committed with its cursor.
import { Type, type Static } from "@sinclair/typebox";

/** Event types the alarm engine appends (EventFrame.type), one per state transition. */
export const AlarmTransition = {
  /** condition became active (unacknowledged) */
  Active: "alarm.active",
  /** condition returned to normal (stays unacknowledged until acknowledged) */
  Cleared: "alarm.cleared",
  /** an operator acknowledged it (data.actor) */
  Acked: "alarm.acked",
  /** an operator shelved it until data.until (micros) */
  Shelved: "alarm.shelved",
  /** shelving ended (expiry or operator) */
  Unshelved: "alarm.unshelved",
} as const;
export type AlarmTransition = (typeof AlarmTransition)[keyof typeof AlarmTransition];

/**
 * Event types other parts append to ask for an alarm that is not a limit on a tag:
 * - `mapping.error` / `mapping.recovered`: the mapping layer could not compute a tag (EventFrame.tag set,
 *   data.error the reason); the engine raises/clears alarm id `mapping:<tag>`.
 * - `alarm.raise` / `alarm.clear`: a rule (source `rule:<name>`) raises or clears alarm id
 *   `rule:<name>:<data.name>`, with data.priority and data.message.
 */
export const AlarmRequest = {
  MappingError: "mapping.error",
  MappingRecovered: "mapping.recovered",
  Raise: "alarm.raise",
  Clear: "alarm.clear",
} as const;

export const AlarmPriority = Type.Union(
  [Type.Literal("critical"), Type.Literal("high"), Type.Literal("medium"), Type.Literal("low")],
  { default: "medium" },
);
export type AlarmPriority = Static<typeof AlarmPriority>;

/** EventFrame.data of every transition event (and one row of GET /api/alarms). */
export const AlarmState = Type.Object(
  {
    id: Type.String({ description: "stable id: <tag>:<kind> for limit alarms (e.g. Boiler.T:HH), mapping:<tag>, rule:<rule>:<name>" }),
    tag: Type.Optional(Type.String()),
    kind: Type.String({ description: "HH | H | L | LL | bool | quality | mapping | rule" }),
    priority: AlarmPriority,
    active: Type.Boolean(),
    acked: Type.Boolean(),
    shelvedUntil: Type.Optional(Type.Number({ description: "micros; shelved while now < shelvedUntil" })),
    message: Type.String(),
    value: Type.Optional(Type.Unknown()),
    since: Type.Number({ description: "micros of the last transition" }),
    actor: Type.Optional(Type.String({ description: "who acknowledged or shelved" })),
  },
  { $id: "AlarmState" },
);
export type AlarmState = Static<typeof AlarmState>;
