// Config of the simulator driver: poll groups' rates and a signal per tag.
import { Type, type Static } from "@sinclair/typebox";

export const Signal = Type.Object(
  {
    shape: Type.Union(["sine", "ramp", "random", "square", "counter", "constant"].map((s) => Type.Literal(s)), { default: "sine" }),
    min: Type.Number({ default: 0 }),
    max: Type.Number({ default: 100 }),
    periodMs: Type.Number({ minimum: 1, default: 60_000 }),
  },
  // a default on the object itself: TypeBox fills defaults inside a record's values only then
  { additionalProperties: false, default: {} },
);
export type Signal = Static<typeof Signal>;

export const SimulatorConfig = Type.Object(
  {
    intervalMs: Type.Number({ minimum: 0, default: 1000, description: "default poll interval for groups not listed" }),
    groups: Type.Record(Type.String(), Type.Number({ minimum: 0 }), { default: {}, description: "group name -> interval in ms" }),
    signals: Type.Record(Type.String(), Signal, { default: {}, description: "tag -> signal (default: sine 0..100 over 60 s)" }),
  },
  { additionalProperties: false },
);
export type SimulatorConfig = Static<typeof SimulatorConfig>;
