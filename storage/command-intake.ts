// The intake of a command that came from a broker (MQTT commands, NATS commands) once its sender is
// known: the tag must be the tenant's and writable with that value, the command goes through the command
// bus with its real expiry (a command already past its life is still recorded and the executor acks it
// `expired`, never writing it), a client id used before for another command is refused, and the answer
// waits for the AckFrame. Shared so that every broker origin checks exactly the same things.
import { ACK_CODE_INFO, type AckCode } from "../schemas/acks.ts";
import type { Catalog } from "../schemas/catalog.ts";
import { checkWrite } from "../schemas/command.ts";
import { refused, scopedCommandId, type CommandAnswer } from "../schemas/command-message.ts";
import type { CmdFrame, Logged, Value } from "../schemas/frames.ts";
import type { CommandBus } from "./commands.ts";

export interface BrokerCommand {
  origin: "mqtt" | "nats";
  tenant: string;
  tag: string;
  value: unknown;
  /** the client's id (scoped by tenant and actor into the command id); undefined: a fresh id */
  clientId: string | undefined;
  /** who sent it, as recorded in the CmdFrame (`mqtt:alice`, `nats:alice`) */
  actor: string;
  /** ms since the epoch */
  expiresAt: number;
}

const sameValue = (a: Value, b: Value) => (typeof a === "bigint" || typeof b === "bigint" ? String(a) === String(b) : a === b);

/**
 * Checks and records the command (resolves once its CmdFrame is committed, or finds the first command of
 * the same scoped id). Throws Answered for a refusal (unknown tag, not writable, bad value, id conflict).
 */
export async function recordCommand(bus: CommandBus, catalog: Catalog, c: BrokerCommand): Promise<Logged<CmdFrame>> {
  const id = c.clientId ?? null;
  const variable = catalog.get(c.tag);
  // a tag of another tenant is answered as an unknown one: a tenant cannot list another's tags
  if (!variable || variable.tenant !== c.tenant) throw refused(id, "refused_unknown_tag", "no such tag");
  const checked = checkWrite(variable, c.value);
  if (!checked.ok) throw refused(id, `refused_${checked.code}` satisfies AckCode, checked.message);
  const ttlMs = c.expiresAt - Date.now();
  const cmdId = c.clientId === undefined ? undefined : scopedCommandId(c.tenant, c.actor, c.clientId, c.origin);
  const cmd = await bus.submit({ tag: c.tag, value: checked.value, origin: c.origin, actor: c.actor, tenant: c.tenant, ttlMs, ...(cmdId ? { id: cmdId } : {}) });
  if (cmd.origin !== c.origin || cmd.tag !== c.tag || !sameValue(cmd.value, checked.value)) {
    throw refused(id, "idempotency_conflict", `id '${id}' was used for a different command (${cmd.tag} = ${String(cmd.value)}); use a new id`);
  }
  return cmd;
}

/** The answer for a recorded command: its AckFrame's code, or timeout_outcome_unknown after timeoutMs. */
export async function answerCommand(bus: CommandBus, cmd: Logged<CmdFrame>, clientId: string | undefined, timeoutMs: number): Promise<CommandAnswer> {
  const id = clientId ?? cmd.id;
  const ack = await bus.waitForAck(cmd.id, timeoutMs);
  if (!ack) {
    // the command is in the log and its driver may still execute it: nobody can tell yet
    const error = `no ack within ${timeoutMs} ms: ${ACK_CODE_INFO.timeout_outcome_unknown.text}; the ack will be in the log (GET /api/commands/${cmd.id})`;
    return { id, command: cmd.id, ok: false, status: "timeout", code: "timeout_outcome_unknown", error, offset: cmd.offset };
  }
  return { id, command: cmd.id, ok: ack.ok, status: ack.status, code: ack.code, ...(ack.error ? { error: ack.error } : {}), offset: cmd.offset };
}
