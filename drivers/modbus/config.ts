// Config of the Modbus TCP driver (drivers.yml `config:`): poll groups, default unit id, read merging.
import { Type, type Static } from "@sinclair/typebox";

export const ModbusConfig = Type.Object(
  {
    unitId: Type.Integer({ minimum: 0, maximum: 255, default: 1, description: "unit id for tags whose address has none" }),
    intervalMs: Type.Number({ minimum: 0, default: 1000, description: "poll interval of groups not listed in `groups`" }),
    groups: Type.Record(Type.String(), Type.Number({ minimum: 0 }), { default: {}, description: "poll group name -> interval in ms" }),
    maxGap: Type.Integer({ minimum: 0, maximum: 124, default: 8, description: "unused registers (or x16 bits) a merged read may span" }),
    maxRegisters: Type.Integer({ minimum: 1, maximum: 125, default: 125, description: "registers per read request" }),
    maxBits: Type.Integer({ minimum: 1, maximum: 2000, default: 2000, description: "coils/inputs per read request" }),
    failuresBeforeRestart: Type.Integer({
      minimum: 1,
      default: 3,
      description: "consecutive connection failures after which the read loop ends (the manager restarts it with backoff)",
    }),
    exceptionEventMs: Type.Integer({ minimum: 0, default: 10_000, description: "at most one modbus.exception event per read and code in this time" }),
    readBack: Type.Boolean({ default: true, description: "after a write, read the registers back and compare" }),
  },
  { additionalProperties: false },
);
export type ModbusConfig = Static<typeof ModbusConfig>;
