// What happened to a command, as one code that crosses the log in every AckFrame. Every bridge maps
// the code to its protocol from this one table (HTTP status, OPC UA StatusCode, Modbus exception);
// the ack's `error` text is for people only and is never parsed. Pure data, no I/O.
import { Type, type Static } from "@sinclair/typebox";

export const ACK_CODES = [
  "ok",
  "refused_unknown_tag",
  "refused_not_writable",
  "refused_type_mismatch",
  "refused_out_of_range",
  "expired",
  "driver_not_running",
  "not_supported",
  "device_busy",
  "device_error",
  "device_address_error",
  "readback_mismatch",
  "timeout_outcome_unknown",
  "outcome_unknown_restart",
  "internal_error",
] as const;

export const AckCode = Type.Union(
  ACK_CODES.map((c) => Type.Literal(c)),
  { description: "what happened to the command; see schemas/acks.ts for the meaning and the mapping to each protocol" },
);
export type AckCode = (typeof ACK_CODES)[number];

export interface AckCodeInfo {
  /** one line for people */
  text: string;
  /** could the device have applied the value? false: certainly not; true: it did; "unknown": nobody can tell */
  applied: boolean | "unknown";
  /** HTTP status of PUT /api/tags/:tag */
  http: number;
  /** OPC UA StatusCode name (node-opcua StatusCodes key) for a UA write */
  opcua: string;
  /** Modbus exception code for a write from a Modbus master (0: none, the write succeeded) */
  modbus: number;
}

/**
 * The mapping of every code. HTTP: 200 done, 409 refused by the gateway's state (never written), 422
 * invalid for the tag, 502 the device refused, 504 outcome unknown. Modbus: 02 illegal address, 03
 * illegal value, 04 device failure (certainly not applied), 06 busy (retry later), 0B gateway target
 * failed to respond (outcome unknown: a master must read back before retrying).
 */
export const ACK_CODE_INFO: Readonly<Record<AckCode, AckCodeInfo>> = {
  ok: { text: "written (and read back when configured)", applied: true, http: 200, opcua: "Good", modbus: 0 },
  refused_unknown_tag: { text: "no such tag", applied: false, http: 404, opcua: "BadNodeIdUnknown", modbus: 2 },
  refused_not_writable: { text: "the tag is read-only", applied: false, http: 403, opcua: "BadNotWritable", modbus: 2 },
  refused_type_mismatch: { text: "the value does not fit the tag's type", applied: false, http: 422, opcua: "BadTypeMismatch", modbus: 3 },
  refused_out_of_range: { text: "the value is outside the tag's limits", applied: false, http: 422, opcua: "BadOutOfRange", modbus: 3 },
  expired: { text: "expired before execution: never written", applied: false, http: 409, opcua: "BadTimeout", modbus: 4 },
  driver_not_running: { text: "the tag's driver is not running: not written", applied: false, http: 409, opcua: "BadNotConnected", modbus: 4 },
  not_supported: { text: "the tag's driver cannot write", applied: false, http: 409, opcua: "BadNotSupported", modbus: 1 },
  device_busy: { text: "not written: the link to the device is being re-established after an unanswered write", applied: false, http: 409, opcua: "BadResourceUnavailable", modbus: 6 },
  device_error: { text: "the device refused the write", applied: false, http: 502, opcua: "BadDeviceFailure", modbus: 4 },
  device_address_error: { text: "the device does not have this address (check the tag's address)", applied: false, http: 502, opcua: "BadConfigurationError", modbus: 4 },
  readback_mismatch: { text: "written, but the device reads back another value", applied: "unknown", http: 502, opcua: "BadDeviceFailure", modbus: 4 },
  timeout_outcome_unknown: { text: "no answer from the device in time: the value may or may not have been applied", applied: "unknown", http: 504, opcua: "BadTimeout", modbus: 11 },
  outcome_unknown_restart: { text: "the gateway stopped during the write: the value may or may not have been applied", applied: "unknown", http: 504, opcua: "BadTimeout", modbus: 11 },
  internal_error: { text: "the driver failed while writing", applied: "unknown", http: 502, opcua: "BadInternalError", modbus: 4 },
};

export const isAckCode = (s: unknown): s is AckCode => typeof s === "string" && (ACK_CODES as readonly string[]).includes(s);

/**
 * The code of an ack stored before codes existed (status + text). Only for reading old log rows:
 * new acks always carry their code.
 */
export function legacyAckCode(status: string, error: string | undefined): AckCode {
  if (status === "ok") return "ok";
  if (status === "expired") return "expired";
  const e = error ?? "";
  if (/outcome unknown after restart/.test(e)) return "outcome_unknown_restart";
  if (/timed out|outcome unknown/.test(e)) return "timeout_outcome_unknown";
  if (/is not running|not connected/.test(e)) return "driver_not_running";
  if (/unknown tag/.test(e)) return "refused_unknown_tag";
  if (/does not support writes/.test(e)) return "not_supported";
  if (/previous write to this device/.test(e)) return "device_busy";
  if (/read back/.test(e)) return "readback_mismatch";
  return "device_error";
}
