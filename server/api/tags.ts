// GET /api/tags: the catalog with each tag's latest value, quality and timestamp. With auth configured
// (gateway.yml `auth:` has a key) it is a read route like the others: a JWT with scope `read`, and the
// reader sees only the tags the read routes would show it (its tenant's, covered by its `tags` claim).
// Without any auth key it stays open: the local demo and console list the plant without a token.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { errorAnswers, TagView } from "../../schemas/api.ts";
import { qualityName, tagSource, type Value } from "../../schemas/index.ts";
import { AuthError, authOf } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { jwtReadAuthorizer, readableTags } from "./query.ts";

/**
 * JSON has no bigint, NaN or infinities: 64-bit integers go out as decimal strings, exact, and a NaN or
 * infinite reading (a float register a device fills with it) as "NaN", "Infinity" or "-Infinity", which
 * Number() reads back. Left as numbers they failed the answer's schema: one such tag made the whole
 * catalog answer 500.
 */
export const jsonValue = (v: Value): number | boolean | string | null =>
  typeof v === "bigint" ? v.toString() : typeof v === "number" && !Number.isFinite(v) ? String(v) : v;

export function tagsApi(ctx: GatewayContext) {
  const verifier = authOf(ctx); // asked at each request: a reload that adds or removes keys applies at once
  const authorize = jwtReadAuthorizer(ctx, verifier);
  return new Elysia({ name: "tags" }).get(
    "/api/tags",
    async ({ request, set }) => {
      let visible: (t: { tag: string; tenant: string }) => boolean = () => true;
      if (verifier.isConfigured) {
        try {
          const who = await authorize(request);
          const readable = readableTags(ctx, who);
          const allowed = readable && new Set(readable);
          visible = (t) => (who.tenant === null || t.tenant === who.tenant) && (allowed === null || allowed.has(t.tag));
        } catch (e) {
          if (!(e instanceof AuthError)) throw e;
          set.status = e.status;
          return { error: e.code, message: e.message, field: null };
        }
      }
      const latest = ctx.log.latest();
      return ctx.catalog
        .all()
        .filter(visible)
        .map((t) => {
          const f = latest.get(t.tag);
          return {
            tag: t.tag,
            driver: tagSource(t),
            type: t.type,
            unit: t.unit ?? null,
            description: t.description ?? null,
            access: t.access,
            ...(t.min === undefined ? {} : { min: t.min }),
            ...(t.max === undefined ? {} : { max: t.max }),
            tenant: t.tenant,
            value: f ? jsonValue(f.value) : null,
            quality: f ? qualityName(f.quality) : "Bad_WaitingForInitialData",
            ts: f ? new Date(f.ts / 1000).toISOString() : null,
            offset: f?.offset ?? null,
          };
        });
    },
    {
      response: { 200: Type.Array(TagView), ...errorAnswers(401, 403) },
      detail: { tags: ["tags"], summary: "The tag catalog with latest values (JWT scope read when auth is configured; open otherwise)" },
    },
  );
}
