// GET /api/tags: the catalog with each tag's latest value, quality and timestamp.
import { Elysia } from "elysia";
import { qualityName, type Value } from "../../schemas/index.ts";
import type { GatewayContext } from "../context.ts";

/** JSON has no bigint: 64-bit integers go out as decimal strings, exact. */
export const jsonValue = (v: Value): number | boolean | string | null => (typeof v === "bigint" ? v.toString() : v);

export function tagsApi(ctx: GatewayContext) {
  return new Elysia({ name: "tags" }).get("/api/tags", () => {
    const latest = ctx.log.latest();
    return ctx.catalog.all().map((t) => {
      const f = latest.get(t.tag);
      return {
        tag: t.tag,
        driver: t.driver,
        type: t.type,
        unit: t.unit ?? null,
        description: t.description ?? null,
        access: t.access,
        tenant: t.tenant,
        value: f ? jsonValue(f.value) : null,
        quality: f ? qualityName(f.quality) : "Bad_WaitingForInitialData",
        ts: f ? new Date(f.ts / 1000).toISOString() : null,
        offset: f?.offset ?? null,
      };
    });
  });
}
