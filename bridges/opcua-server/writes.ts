// UA writes become commands: checkWrite -> CmdFrame (origin opcua, the session's user as actor) ->
// wait for the AckFrame -> the StatusCode the client gets. Nothing is answered Good before the
// driver's acknowledgement is committed to the log. The ack's code gives the StatusCode (schemas/acks.ts);
// its text is for people only.
import { StatusCodes, X509IdentityToken, type ISessionContext, type StatusCode, type Variant } from "node-opcua";
import type { Logger } from "pino";
import { ACK_CODE_INFO, type AckCode } from "../../schemas/acks.ts";
import { checkWrite } from "../../schemas/command.ts";
import type { Variable } from "../../schemas/index.ts";
import type { CommandBus } from "../../storage/commands.ts";
import type { WriteHandler } from "./address-space.ts";
import { fromVariant } from "./values.ts";


const STATUS_BY_NAME = StatusCodes as unknown as Record<string, StatusCode | undefined>;

/** The StatusCode of an ack code, from the one table; a name node-opcua lacks (a table typo) is an internal error. */
export function statusOfAck(code: AckCode): StatusCode {
  return STATUS_BY_NAME[ACK_CODE_INFO[code].opcua] ?? StatusCodes.BadInternalError;
}

/** Who is writing: the user name, "cert:<subject CN>" for an X509 user, or "anonymous". */
export function actorOf(ctx: ISessionContext | null): string {
  const c = ctx as (ISessionContext & { getUserName?(): string; session?: { userIdentityToken?: unknown } }) | null;
  if (!c?.getUserName) return "anonymous";
  const name = c.getUserName();
  return c.session?.userIdentityToken instanceof X509IdentityToken ? `cert:${name}` : name;
}

export interface WriterOptions {
  commands: CommandBus;
  writeTimeoutMs: number;
  commandTtlMs: number;
  logger: Logger;
}

export function commandWriter(o: WriterOptions): WriteHandler {
  return async (tag: Variable, variant: Variant, ctx: ISessionContext | null) => {
    const checked = checkWrite(tag, fromVariant(tag.type, variant));
    if (!checked.ok) return statusOfAck(`refused_${checked.code}`);
    const actor = actorOf(ctx);
    try {
      const { cmd, ack } = await o.commands.execute(
        { tag: tag.tag, value: checked.value, origin: "opcua", actor, tenant: tag.tenant, ttlMs: o.commandTtlMs },
        o.writeTimeoutMs,
      );
      if (!ack) {
        // the command is in the log and may still run before it expires: the outcome is unknown
        o.logger.warn({ tag: tag.tag, cmd: cmd.id, actor, waitedMs: o.writeTimeoutMs }, "opcua write: no acknowledgement in time (outcome unknown)");
        return StatusCodes.BadTimeout;
      }
      if (!ack.ok) o.logger.info({ tag: tag.tag, cmd: cmd.id, actor, code: ack.code, error: ack.error }, "opcua write not applied");
      return statusOfAck(ack.code);
    } catch (err) {
      // the command could not be committed (log closed, disk error): nothing was written
      o.logger.error({ err, tag: tag.tag, actor }, "opcua write: command not recorded");
      return StatusCodes.BadResourceUnavailable;
    }
  };
}
