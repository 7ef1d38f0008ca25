// An ack's code in words for operators (from the gateway's one table, schemas/acks.ts): what happened to
// the value (written, not written, or maybe written) and the class the console colours it by.
import { ACK_CODE_INFO, isAckCode } from "#schemas/acks.ts";

export type AckClass = "good" | "bad" | "uncertain" | "pending";

export interface AckWords {
  /** one short headline: Written / Refused / Outcome unknown / Waiting for the device */
  title: string;
  /** the table's sentence for the code */
  text: string;
  cls: AckClass;
}

export function ackWords(code: string): AckWords {
  if (!isAckCode(code)) return { title: "Waiting for the device", text: "no acknowledgement yet: the command is recorded and waits for its driver", cls: "pending" };
  const info = ACK_CODE_INFO[code];
  if (code === "ok") return { title: "Written", text: info.text, cls: "good" };
  if (info.applied === "unknown") return { title: "Outcome unknown", text: `${info.text}. Read the tag back before writing again.`, cls: "uncertain" };
  return { title: "Refused: not written", text: info.text, cls: "bad" };
}
