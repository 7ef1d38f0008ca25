// The Modbus answer to a write from the acks of the commands it became. The ack's code is mapped through
// ACK_CODE_INFO (schemas/acks.ts), never its text: 04 certainly not applied, 06 busy (retry later), 0B the
// outcome is unknown (the value may or may not be in the PLC: a master must read back before retrying).
import { ACK_CODE_INFO, type AckCode } from "../../schemas/acks.ts";
import { ExceptionCode, ModbusException } from "./protocol.ts";

/** What the slave needs of an ack (a Logged<AckFrame> fits); null: none came within writeTimeoutMs. */
export type WriteAck = { ok: boolean; code: AckCode; error?: string } | null;

/**
 * null when every command was acked ok; else the exception to answer. One write can be several commands
 * (FC16 over several tags): an unknown outcome wins over a certain failure, because some value may be
 * applied and a master that retried blindly could apply it twice.
 */
export function writeException(acks: readonly WriteAck[]): ModbusException | null {
  let first: ModbusException | null = null;
  for (const ack of acks) {
    if (ack?.ok) continue;
    const e = ackException(ack);
    if (e.code === ExceptionCode.GatewayTargetFailed) return e;
    first ??= e;
  }
  return first;
}

function ackException(ack: WriteAck): ModbusException {
  if (!ack) return new ModbusException(ExceptionCode.GatewayTargetFailed, "no ack within the write timeout: outcome unknown");
  const info = ACK_CODE_INFO[ack.code];
  // a failed ack whose code maps to "no exception" would answer success for a failure: device failure instead
  const code = info && info.modbus !== 0 ? info.modbus : ExceptionCode.DeviceFailure;
  return new ModbusException(code, `ack ${ack.code}: ${ack.error ?? info?.text ?? ""}`);
}
