// Parsing of request parameters that a TypeBox schema cannot check alone (times, durations), and the one
// error shape of the API: `{ error, message, field }`. A bad parameter throws InvalidParam; the API's
// onError (server/api/index.ts) answers it 400, as it answers Elysia's own validation errors.
import type { ValidationError } from "elysia";
import { TAG_NAME_PATTERN } from "../../schemas/index.ts";

/** The body of every error answer; `field` names the parameter or body property at fault (null: none). */
export interface ApiError {
  error: string;
  message: string;
  field: string | null;
}

/** A request parameter that cannot be used: answered 400 `invalid_request` naming `field`. */
export class InvalidParam extends Error {
  override name = "InvalidParam";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** Times the log can hold: 1970-01-01 .. 9999-12-31 (microseconds stay exact below 2^53 / 1000 ms). */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** An ISO date or epoch milliseconds (digits only), between 1970 and 9999; `fallback` when absent or empty. */
export function parseTimeParam(raw: string | undefined, field: string, fallback: number): number;
export function parseTimeParam(raw: string | undefined, field: string): number | undefined;
export function parseTimeParam(raw: string | undefined, field: string, fallback?: number): number | undefined {
  if (raw === undefined || raw === "") return fallback;
  // Date.parse alone is lenient ("-5" is a date to it): only digits or an ISO 8601 date-time
  const ms = /^\d{1,16}$/.test(raw) ? Number(raw) : ISO_DATE.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_TIME_MS) {
    throw new InvalidParam(field, `expected an ISO date or epoch milliseconds between 1970 and 9999, got '${raw.slice(0, 40)}'`);
  }
  return ms;
}

/** Longest duration accepted (100 years): its microseconds stay an exact integer in SQL. */
const MAX_DURATION_MS = 100 * 365.25 * 86_400_000;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `5s`, `1m`, `250ms`, `1h`, `1d`, or plain milliseconds; at least 1 ms, at most 100 years. */
export function parseDurationParam(raw: string, field: string): number {
  const m = /^(\d{1,12}(?:\.\d{1,6})?)(ms|s|m|h|d)?$/.exec(raw.trim());
  const ms = m ? Number(m[1]) * UNIT_MS[(m[2] ?? "ms") as keyof typeof UNIT_MS] : NaN;
  if (!(ms >= 1 && ms <= MAX_DURATION_MS)) {
    throw new InvalidParam(field, `expected a duration from 1ms to 100 years such as 250ms, 10s, 1m, 1h, 1d, got '${raw.slice(0, 40)}'`);
  }
  return ms;
}

const TAG_NAME = new RegExp(TAG_NAME_PATTERN);

/** A tag name from a path (already percent-decoded once by the router): refused unless it could be a tag. */
export function parseTagParam(raw: string, field = "tag"): string {
  if (!TAG_NAME.test(raw)) throw new InvalidParam(field, `not a tag name (letters, digits and _ . : / -, at most 200): '${raw.slice(0, 40)}'`);
  return raw;
}

/** "/a/0/b" (a TypeBox error path) -> "a.0.b"; "" -> null. */
const fieldOfPath = (path: string | undefined): string | null => path?.replace(/^\//, "").replaceAll("/", ".") || null;

/**
 * Elysia's validation error as `{ error, message, field }`. For a query string coerced property by
 * property, Elysia reports the path as the root: the field is then the query parameter holding the
 * refused value (read from the request's URL: a WebSocket upgrade has no parsed query).
 */
export function validationError(e: Readonly<ValidationError>, request: Request): ApiError {
  const query = Object.fromEntries(new URL(request.url).searchParams);
  const first = e.valueError;
  let field = fieldOfPath(first?.path);
  if (!field && e.type === "property") {
    field = Object.keys(query).find((k) => query[k] === String(e.value) || Number(query[k]) === e.value) ?? null;
  }
  const where = e.type === "body" ? "body" : e.type === "params" ? "path" : "query";
  const what = first?.message ?? "invalid value";
  return { error: "invalid_request", message: `${field ? `${where} ${field}` : where}: ${what}`, field: field ?? where };
}
