// One rule for tag paths on every route: a tag is one path segment in the route table
// (`/api/tags/:tag`, `/api/tags/:tag/history`), and a client may write it with raw slashes or
// percent-encoded. A URL with raw slashes in the tag is rewritten to the encoded form before routing.
export const TAGS_PREFIX = "/api/tags/";

/** Route suffixes after a tag, by method: GET /api/tags/:tag/history. A tag ending in `/history` is read as `<tag>/history/history`. */
const SUFFIXES: Record<string, readonly string[]> = { GET: ["/history"], HEAD: ["/history"] };

export class InvalidTagPath extends Error {
  override name = "InvalidTagPath";
}

/**
 * The URL with the tag as one encoded segment, or null when it already is (or is not a tag path).
 * Throws InvalidTagPath when the tag is not valid percent-encoding.
 */
export function canonicalTagUrl(method: string, href: string): string | null {
  // cheap test first: this runs for every request
  const at = href.indexOf(TAGS_PREFIX);
  if (at < 0) return null;
  const url = new URL(href);
  if (!url.pathname.startsWith(TAGS_PREFIX)) return null;
  let rest = url.pathname.slice(TAGS_PREFIX.length);
  const suffix = (SUFFIXES[method] ?? []).find((s) => rest.endsWith(s) && rest.length > s.length) ?? "";
  rest = rest.slice(0, rest.length - suffix.length);
  if (!rest.includes("/")) return null;
  let tag: string;
  try {
    tag = decodeURIComponent(rest);
  } catch {
    throw new InvalidTagPath(`the tag '${rest}' in the path is not valid percent-encoding`);
  }
  url.pathname = TAGS_PREFIX + encodeURIComponent(tag) + suffix;
  return url.href;
}
