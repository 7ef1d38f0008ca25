// One rule for tag paths on every route: a tag is one path segment in the route table
// (`/api/tags/:tag`, `/api/tags/:tag/history`, and an alarm id, which holds its tag:
// `/api/alarms/:id/ack`), and a client may write it with raw slashes or percent-encoded. A URL with raw
// slashes in the tag is rewritten to the encoded form before routing.
export const TAGS_PREFIX = "/api/tags/";

/** A route family whose one path parameter may hold slashes. */
interface SlashedParam {
  prefix: string;
  /** the parameter's name in errors */
  field: "tag" | "id";
  /** route suffixes after the parameter, by method */
  suffixes: Record<string, readonly string[]>;
  /** every route of the family has a suffix (a path without one is left to the router's 404) */
  suffixRequired: boolean;
}

// GET /api/tags/:tag/history: a tag ending in `/history` is read as `<tag>/history/history`.
const FAMILIES: readonly SlashedParam[] = [
  { prefix: TAGS_PREFIX, field: "tag", suffixes: { GET: ["/history"], HEAD: ["/history"] }, suffixRequired: false },
  { prefix: "/api/alarms/", field: "id", suffixes: { POST: ["/ack", "/shelve", "/unshelve"] }, suffixRequired: true },
];

export class InvalidTagPath extends Error {
  override name = "InvalidTagPath";
  constructor(
    message: string,
    /** the path parameter it is about */
    readonly field: "tag" | "id" = "tag",
  ) {
    super(message);
  }
}

/**
 * The URL with the tag (or alarm id) as one encoded segment, or null when it already is (or is not such a
 * path). Throws InvalidTagPath when it is not valid percent-encoding.
 */
export function canonicalTagUrl(method: string, href: string): string | null {
  for (const family of FAMILIES) {
    // cheap test first: this runs for every request
    if (href.indexOf(family.prefix) < 0) continue;
    const url = new URL(href);
    if (!url.pathname.startsWith(family.prefix)) continue;
    return canonicalIn(family, method, url);
  }
  return null;
}

function canonicalIn(family: SlashedParam, method: string, url: URL): string | null {
  let rest = url.pathname.slice(family.prefix.length);
  const suffix = (family.suffixes[method] ?? []).find((s) => rest.endsWith(s) && rest.length > s.length);
  if (suffix === undefined && family.suffixRequired) return null;
  rest = rest.slice(0, rest.length - (suffix ?? "").length);
  if (!rest.includes("/")) return null;
  let value: string;
  try {
    value = decodeURIComponent(rest);
  } catch {
    throw new InvalidTagPath(`the ${family.field === "tag" ? "tag" : "alarm id"} '${rest}' in the path is not valid percent-encoding`, family.field);
  }
  url.pathname = family.prefix + encodeURIComponent(value) + (suffix ?? "");
  return url.href;
}
