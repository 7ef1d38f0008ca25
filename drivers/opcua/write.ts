// A command written to the server's node, with the ack code that says what happened: refused before
// sending (the value does not fit), refused by the server (its StatusCode, by name), or unknown (no
// answer within the endpoint's timeout, or the connection failed while the request was out).
import { AttributeIds, StatusCodes, type StatusCode } from "node-opcua";
import { checkWrite, type AckCode, type CmdFrame, type Variable } from "../../schemas/index.ts";
import { ABORTED, TIMED_OUT, deadline } from "../../storage/time.ts";
import type { WriteResult } from "../contract.ts";
import { toRaw } from "../mapping.ts";
import type { SharedSession } from "./session.ts";
import { toVariant } from "./values.ts";

/** The ack code of a server's answer to a write. */
export function codeOfStatus(sc: StatusCode): AckCode {
  if (sc.isGood()) return "ok";
  if (sc.equals(StatusCodes.BadNodeIdUnknown) || sc.equals(StatusCodes.BadNodeIdInvalid) || sc.equals(StatusCodes.BadAttributeIdInvalid)) return "device_address_error";
  if (sc.equals(StatusCodes.BadTypeMismatch)) return "refused_type_mismatch";
  if (sc.equals(StatusCodes.BadOutOfRange)) return "refused_out_of_range";
  if (sc.equals(StatusCodes.BadTimeout)) return "timeout_outcome_unknown";
  return "device_error";
}

/** Writes `cmd` to `nodeId`; waits for the answer at most `timeoutMs`. */
export async function writeNode(shared: SharedSession, nodeId: string, cmd: CmdFrame, tag: Variable, timeoutMs: number): Promise<WriteResult> {
  // bridges check values before they become commands; rules and old log rows may not have been
  const checked = checkWrite({ ...tag, access: "RW" }, cmd.value);
  if (!checked.ok) return { ok: false, code: `refused_${checked.code}`, error: checked.message };
  if (!shared.isConnected) return { ok: false, code: "driver_not_running", error: "BadNotConnected: no connection to the server (not written)" };
  let value;
  try {
    value = toVariant(tag, toRaw(tag, checked.value));
  } catch (e) {
    return { ok: false, code: "refused_type_mismatch", error: `value ${String(cmd.value)} cannot be sent as the tag's type ${tag.type}: ${(e as Error).message}` };
  }
  try {
    const status = await deadline(shared.session.write({ nodeId, attributeId: AttributeIds.Value, value: { value } }), timeoutMs);
    if (status === TIMED_OUT || status === ABORTED) {
      return { ok: false, code: "timeout_outcome_unknown", error: `no answer from the server within ${timeoutMs} ms: the value may or may not have been written` };
    }
    const code = codeOfStatus(status);
    return code === "ok" ? { ok: true } : { ok: false, code, error: `${status.name}: the server refused the write to ${nodeId}` };
  } catch (e) {
    // the request was out when the connection failed: the server may have applied it
    return { ok: false, code: "timeout_outcome_unknown", error: `BadCommunicationError: ${(e as Error).message.split("\n")[0]} (outcome unknown)` };
  }
}
