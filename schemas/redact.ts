// Secret values never leave in a message: a config error names the field and what was expected, and
// shows the value it got only when the field is not a secret. Used by every validation message
// (config files, bridge and driver sections) and by log lines that show a URL (broker URLs can carry
// `user:password@`). Pure functions, no I/O.

/** Field names whose values are secrets. */
const SECRET_FIELD = /secret|passw|key|token|credential/i;

export const REDACTED = "[redacted]";

/** Whether a field (the last segment of a path such as `/auth/hs256Secret` or `auth.hs256Secret`) holds a secret. */
export function isSecretField(path: string): boolean {
  const last = path.split(/[/.[\]]/).filter(Boolean).pop() ?? "";
  return SECRET_FIELD.test(last);
}

/** `scheme://user:password@host` -> `scheme://user:[redacted]@host`, wherever it appears in a text. */
export function redactSecrets(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)([^\s/@:'"]*):([^\s/@'"]*)@/gi, `$1$2:${REDACTED}@`);
}

/** A URL for a log line: its password replaced (user names are kept: they say which account). */
export const redactUrl = (url: string): string => redactSecrets(url);

/** A value for a message about `path`: redacted as a whole under a secret field, else deeply (fields and URLs). */
export function redactValue(path: string, value: unknown): unknown {
  if (isSecretField(path)) return REDACTED;
  if (typeof value === "string") return redactSecrets(value);
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactValue("", v));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(k, v)]));
}

/** `; got <value>` of a validation message, the value redacted and cut to `max` characters. */
export function gotValue(path: string, value: unknown, max = 80): string {
  return JSON.stringify(redactValue(path, value))?.slice(0, max) ?? "undefined";
}

// a `key: value` pair in YAML (block or flow style) whose key names a secret; the value up to the end of
// the line, a comment, or the flow mapping's next `,` / `}`
const SECRET_PAIR = /(^|[\s{,])([\w-]*(?:secret|passw|key|token|credential)[\w-]*)(\s*:[ \t]*)("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,}#"'][^,}#\n]*?)(?=[ \t]*(?:[,}#\n]|$))/gim;

/**
 * A config file's text for showing: the values of secret fields replaced by `"[redacted]"`, and URL
 * passwords. Left as written: file references (`...File`), environment variable names (`...Env`) and
 * `${VAR}` substitutions, which name a secret without holding it.
 */
export function redactConfigText(text: string): string {
  return redactSecrets(text).replace(SECRET_PAIR, (whole, lead: string, key: string, colon: string, value: string) => {
    if (/(?:File|Env)$/.test(key) || /^["']?\$\{[^}]*\}["']?$/.test(value.trim())) return whole;
    return `${lead}${key}${colon}"${REDACTED}"`;
  });
}
