// How each driver's tags read now (counted from the log's latest frame per tag): the Devices and
// Overview views tell a hung device by it, since a driver whose reads all time out is still Active.
import { isBad, qualityName } from "../schemas/quality.ts";
import type { GatewayContext } from "./context.ts";
import type { TagHealth } from "./driver-advice.ts";

export function tagHealthByDriver(ctx: GatewayContext): Map<string, TagHealth> {
  const latest = ctx.log.latest();
  const counts = new Map<string, { total: number; bad: number; qualities: Map<string, number> }>();
  for (const tag of ctx.catalog.all()) {
    if (tag.driver === undefined) continue; // a derived tag (rules) has no driver
    let c = counts.get(tag.driver);
    if (!c) counts.set(tag.driver, (c = { total: 0, bad: 0, qualities: new Map() }));
    c.total++;
    const f = latest.get(tag.tag);
    // a tag never read is waiting for its first value, not failing: the state tells that
    if (!f || !isBad(f.quality)) continue;
    c.bad++;
    const name = qualityName(f.quality);
    c.qualities.set(name, (c.qualities.get(name) ?? 0) + 1);
  }
  const out = new Map<string, TagHealth>();
  for (const [driver, c] of counts) {
    let quality: string | null = null;
    let most = 0;
    for (const [name, n] of c.qualities) if (n > most) [quality, most] = [name, n];
    out.set(driver, { total: c.total, bad: c.bad, quality });
  }
  return out;
}

/** One line per driver that runs (Active) with Bad tags, for the overview's reasons. */
export function badTagReasons(ctx: GatewayContext, health: Map<string, TagHealth>): string[] {
  return ctx.drivers
    .status()
    .filter((d) => d.state === "Active" && (health.get(d.id)?.bad ?? 0) > 0)
    .map((d) => {
      const h = health.get(d.id)!;
      return `driver ${d.id} is Active but ${h.bad} of ${h.total} tags are Bad (${h.quality})`;
    });
}
