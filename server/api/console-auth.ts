// The checks of the console's small routes (overview, drivers): a read token, or an admin one for the
// operator actions, each refusal in the API's one error shape.
import { AuthError, authOf } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { jwtReadAuthorizer } from "./query.ts";

export type Refusal = { error: string; message: string; field: null };

/** `run()` once the request's token has `scope` (read, or admin), else the refusal with its status. */
export function guarded(ctx: GatewayContext, scope: "read" | "admin") {
  const read = jwtReadAuthorizer(ctx);
  return async <T>(request: Request, set: { status?: number | string }, run: (sub: string) => Promise<T> | T): Promise<T | Refusal> => {
    try {
      const who = await read(request);
      if (scope === "admin") {
        const p = await authOf(ctx).verifyRequest(request);
        if (!p.scopes.includes("admin")) throw new AuthError(403, "insufficient_scope", "the token has no 'admin' scope");
      }
      return await run(who.sub);
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      set.status = e.status;
      return { error: e.code, message: e.message, field: null };
    }
  };
}
