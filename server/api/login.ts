// POST /api/login and POST /api/login/refresh: console logins for the users of gateway.yml
// `console.users` (password hashes from `edgectl hash-password`). The answer is a short-lived token the
// gateway signs itself (server/auth/session.ts) that every route accepts as a bearer; the console keeps
// it in memory (no cookie, so no CSRF surface) and renews it while the user is active. A wrong password
// and an unknown user get the same answer (and take the same time: an unknown name is checked against
// a dummy hash); failed attempts are limited per user and per address (login-limiter.ts).
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { AuthError, authOf } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { LoginLimiter } from "./login-limiter.ts";

const LoginAnswer = t.Object({
  token: t.String({ description: "JWT to send as `Authorization: Bearer <token>` (and as ?token= on /api/stream)" }),
  user: t.String(),
  role: t.Union([t.Literal("viewer"), t.Literal("operator"), t.Literal("admin")]),
  expiresAt: t.String({ description: "ISO time the token ends (renew before with POST /api/login/refresh)" }),
});

const REFUSED = { error: "invalid_credentials", message: "the user name or the password is wrong", field: null };

let dummyHash: Promise<string> | null = null;
/** A hash to check unknown names against, so that they cost what a known name costs. */
const dummy = () => (dummyHash ??= Bun.password.hash("not a password of anyone", { algorithm: "argon2id" }));

export function loginApi(ctx: GatewayContext, limiter = new LoginLimiter()) {
  const sessions = authOf(ctx).sessions;
  return new Elysia({ name: "login" })
    .post(
      "/api/login",
      async ({ body, set, request, server }) => {
        if (!sessions.isEnabled) {
          // the same for every name: it says nothing about any user, and tells a new user what to do
          set.status = 401;
          return { error: "no_console_users", message: "this gateway has no console users: add console.users to gateway.yml (hashes from `npm run edgectl -- hash-password`)", field: null };
        }
        const address = server?.requestIP(request)?.address ?? "unknown";
        const waitMs = limiter.retryAfterMs(body.user, address);
        if (waitMs > 0) {
          set.status = 429;
          set.headers["retry-after"] = String(Math.ceil(waitMs / 1000));
          return { error: "too_many_attempts", message: `too many failed logins for this user or address: try again in ${Math.ceil(waitMs / 1000)} s`, field: null };
        }
        const user = sessions.user(body.user);
        const ok = await Bun.password.verify(body.password, user?.passwordHash ?? (await dummy())).catch(() => false);
        if (!user || !ok) {
          limiter.failed(body.user, address);
          ctx.logger.warn({ user: body.user, address }, "console login refused");
          set.status = 401;
          return REFUSED;
        }
        limiter.succeeded(body.user);
        ctx.logger.info({ user: user.name, role: user.role, address }, "console login");
        return await sessions.sign(user);
      },
      {
        body: t.Object({ user: t.String({ minLength: 1, maxLength: 64 }), password: t.String({ minLength: 1, maxLength: 1024 }) }),
        response: { 200: LoginAnswer, ...errorAnswers(400, 401, 429) },
        detail: { tags: ["auth"], security: [], summary: "Console login: a short-lived token for a user of gateway.yml console.users" },
      },
    )
    .post(
      "/api/login/refresh",
      async ({ headers, set }) => {
        try {
          const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? "")?.[1];
          if (!bearer || !sessions.owns(bearer)) throw new AuthError(401, "invalid_token", "a console login's token is required (POST /api/login)");
          const who = await sessions.verify(bearer);
          return await sessions.sign(sessions.user(who.sub)!); // verify found the user
        } catch (e) {
          if (!(e instanceof AuthError)) throw e;
          set.status = e.status;
          return { error: e.code, message: e.message, field: null };
        }
      },
      {
        response: { 200: LoginAnswer, ...errorAnswers(401) },
        detail: { tags: ["auth"], summary: "Renews a console login's token while it is still valid (the user must still be configured)" },
      },
    );
}
