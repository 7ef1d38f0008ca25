// UA writes become commands: checkWrite -> CmdFrame (origin opcua, the session's user as actor) ->
// wait for the AckFrame -> the StatusCode the client gets. Nothing is answered Good before the
// driver's acknowledgement is committed to the log.
import { StatusCodes, X509IdentityToken, type ISessionContext, type StatusCode, type Variant } from "node-opcua";
import type { Logger } from "pino";
import type { WriteRefusal } from "../../schemas/command.ts";
import { checkWrite } from "../../schemas/command.ts";
import type { Variable } from "../../schemas/index.ts";
import type { CommandBus } from "../../storage/commands.ts";
import type { WriteHandler } from "./address-space.ts";
import { fromVariant } from "./values.ts";

const REFUSAL: Record<WriteRefusal, StatusCode> = {
  unknown_tag: StatusCodes.BadNodeIdUnknown,
  not_writable: StatusCodes.BadNotWritable,
  type_mismatch: StatusCodes.BadTypeMismatch,
  out_of_range: StatusCodes.BadOutOfRange,
};

/** "Bad_OutOfRange: ..." or "BadDeviceFailure ..." in an ack's error -> that StatusCode. */
function statusFromError(error: string | undefined): StatusCode {
  const m = error?.match(/\b(Bad_?[A-Za-z]+)/);
  const code = m ? (StatusCodes as unknown as Record<string, StatusCode | undefined>)[m[1]!.replace("_", "")] : undefined;
  return code ?? StatusCodes.BadDeviceFailure;
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
    if (!checked.ok) return REFUSAL[checked.code];
    const actor = actorOf(ctx);
    try {
      const { cmd, ack } = await o.commands.execute(
        { tag: tag.tag, value: checked.value, origin: "opcua", actor, tenant: tag.tenant, ttlMs: o.commandTtlMs },
        o.writeTimeoutMs,
      );
      if (!ack) {
        o.logger.warn({ tag: tag.tag, cmd: cmd.id, actor }, "opcua write: no acknowledgement in time");
        return StatusCodes.BadTimeout;
      }
      if (ack.ok) return StatusCodes.Good;
      if (ack.status === "expired") return StatusCodes.BadTimeout;
      o.logger.info({ tag: tag.tag, cmd: cmd.id, actor, error: ack.error }, "opcua write refused by the driver");
      return statusFromError(ack.error);
    } catch (err) {
      // the command could not be committed (log closed, disk error): nothing was written
      o.logger.error({ err, tag: tag.tag, actor }, "opcua write: command not recorded");
      return StatusCodes.BadResourceUnavailable;
    }
  };
}
