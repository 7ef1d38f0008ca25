// Subjects of the bridge. A NATS subject is dot-separated tokens; '.', '*', '>' and whitespace cannot
// appear inside a token. Layout:
//   {prefix}.{tenant}.{gateway}.batch              a batch of data frames (batch.maxFrames > 1)
//   {prefix}.{tenant}.{gateway}.data.{tag tokens}  one data frame (batch.maxFrames = 1)
// A tag's '/' becomes '.', so `line1/press/temp` is `line1.press.temp` and a consumer can filter
// `edge.acme.gw-7.data.line1.>`. Every other byte outside [A-Za-z0-9_-] is written as `~XX` (hex of its
// UTF-8 byte), and an empty token as `~`, so the encoding is reversible (decodeToken).

const SAFE = /^[A-Za-z0-9_-]+$/;

/** One subject token for a tenant, a gateway id or a piece of a tag. */
export function encodeToken(s: string): string {
  if (s.length === 0) return "~";
  if (SAFE.test(s)) return s;
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `~${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function decodeToken(t: string): string {
  if (t === "~") return "";
  const bytes: number[] = [];
  for (let i = 0; i < t.length; i++) {
    if (t[i] === "~") (bytes.push(parseInt(t.slice(i + 1, i + 3), 16)), (i += 2));
    else bytes.push(t.charCodeAt(i));
  }
  return Buffer.from(bytes).toString("utf8");
}

/** `a/b/c` -> `a.b.c`, each piece encoded. */
export function encodeTag(tag: string): string {
  return tag.split("/").map(encodeToken).join(".");
}

export function decodeTag(tokens: string): string {
  return tokens.split(".").map(decodeToken).join("/");
}

export const batchSubject = (prefix: string, tenant: string, gateway: string): string => `${prefix}.${encodeToken(tenant)}.${encodeToken(gateway)}.batch`;

export const frameSubject = (prefix: string, tenant: string, gateway: string, tag: string): string => `${prefix}.${encodeToken(tenant)}.${encodeToken(gateway)}.data.${encodeTag(tag)}`;

/** Every subject one gateway publishes on (for the restart look-up of its last message). */
export const gatewaySubjects = (prefix: string, gateway: string): string => `${prefix}.*.${encodeToken(gateway)}.>`;

/** Nats-Msg-Id of a message covering offsets first..last: the same offsets give the same id after any restart. */
export const messageId = (gateway: string, first: number, last: number): string => `${gateway}:${first}-${last}`;

// Commands (nats.commands, a stream of their own under commands.subjectPrefix):
//   {cmdPrefix}.{tenant}.{gateway}.cmd.{tag tokens}   a command for a tag of this gateway
//   {cmdPrefix}.{tenant}.{gateway}.ack.{tag tokens}   the gateway's answer to it

/** What the gateway's durable command consumer filters on: every tenant's commands to this gateway. */
export const commandFilter = (cmdPrefix: string, gateway: string): string => `${cmdPrefix}.*.${encodeToken(gateway)}.cmd.>`;

export const answerSubject = (cmdPrefix: string, tenant: string, gateway: string, tag: string): string => `${cmdPrefix}.${encodeToken(tenant)}.${encodeToken(gateway)}.ack.${encodeTag(tag)}`;

/** The tenant and tag of a command subject (one that matched commandFilter), or null. */
export function parseCommandSubject(cmdPrefix: string, subject: string): { tenant: string; tag: string } | null {
  if (!subject.startsWith(`${cmdPrefix}.`)) return null;
  const t = subject.slice(cmdPrefix.length + 1).split(".");
  if (t.length < 4 || t[2] !== "cmd") return null;
  return { tenant: decodeToken(t[0]!), tag: decodeTag(t.slice(3).join(".")) };
}

/** The durable consumer's default name: one per gateway (a durable name is one token). */
export const commandConsumerName = (gateway: string): string => `cmd-${encodeToken(gateway)}`;
