// Quality of a reading, as an OPC UA StatusCode (uint32): the top two bits say Good (00),
// Uncertain (01) or Bad (10); the rest names the reason. Numbers travel in frames and the log,
// names are for people and APIs: every OPC UA code has its name (status-codes.ts, generated from
// node-opcua's table), with the severity first as in Bad_SensorFailure.
import { STATUS_CODE_NAMES } from "./status-codes.ts";

export const Quality = {
  Good: 0x00000000,
  Uncertain: 0x40000000,
  Uncertain_LastUsableValue: 0x40900000,
  Uncertain_EngineeringUnitsExceeded: 0x40940000,
  Bad: 0x80000000,
  Bad_CommunicationError: 0x80050000,
  Bad_Timeout: 0x800a0000,
  Bad_UserAccessDenied: 0x801f0000,
  Bad_WaitingForInitialData: 0x80320000,
  Bad_NodeIdUnknown: 0x80340000,
  Bad_OutOfRange: 0x803c0000,
  Bad_NotWritable: 0x803b0000,
  Bad_NotSupported: 0x803d0000,
  Bad_TypeMismatch: 0x80740000,
  Bad_ConfigurationError: 0x80890000,
  Bad_NotConnected: 0x808a0000,
  Bad_DeviceFailure: 0x808b0000,
  Bad_OutOfService: 0x808d0000,
  Bad_ResourceUnavailable: 0x80040000,
  Bad_InvalidArgument: 0x80ab0000,
  Bad_RequestNotAllowed: 0x80e40000,
  Bad_NoCommunication: 0x80310000,
  Bad_NotReadable: 0x803a0000,
  Bad_SensorFailure: 0x808c0000,
} as const;

export type QualityName = keyof typeof Quality;

const names = new Map<number, string>(STATUS_CODE_NAMES);
const codes = new Map<string, number>(STATUS_CODE_NAMES.map(([code, name]) => [name, code]));

/**
 * The name of a StatusCode: Bad_SensorFailure for 0x808c0000. Info bits (the low 16) follow the name
 * in hex, "Good (0x00000480)"; a code unknown to OPC UA is shown in hex.
 */
export function qualityName(code: number): string {
  const c = code >>> 0;
  const hex = `0x${c.toString(16).padStart(8, "0")}`;
  const name = names.get(c);
  if (name) return name;
  const base = names.get((c & 0xffff0000) >>> 0);
  return base ? `${base} (${hex})` : hex;
}

/** The code of a StatusCode name, in the gateway's spelling (Bad_SensorFailure) or OPC UA's (BadSensorFailure). */
export function qualityCode(name: string): number | undefined {
  return codes.get(name) ?? codes.get(name.replace(/^(Good|Uncertain|Bad)(?=[A-Z])/, "$1_"));
}

export const isGood = (code: number) => code >>> 30 === 0;
export const isUncertain = (code: number) => code >>> 30 === 1;
export const isBad = (code: number) => code >>> 30 === 2;
