// What a command message from a broker says (MQTT commands, NATS commands), checked before anything is
// recorded: its JSON body, the token it carries, its id scoped by tenant and actor, and its life counted
// from publication. Pure (no I/O); the shared intake into the log is storage/command-intake.ts. A broker session
// can hold a command for a day (sessionExpirySec) and a retained one is delivered again at every
// subscription, so the time a message reaches us says nothing about its age: the publisher must say
// when it published (`ts`) or until when the command is valid (`expiresAt`), and the MQTT 5 message
// expiry interval (decremented by the broker while the message waits) shortens its life further.
import { createHash } from "node:crypto";
import type { AckCode } from "./acks.ts";

/** A refusal before the log: the code published in the answer and the reason. */
export class CommandRefused extends Error {
  override name = "CommandRefused";
  constructor(
    readonly code: "invalid_payload" | "refused_retained",
    message: string,
    /** the client's id when the payload has one, so that the client can match the answer */
    readonly id: string | null = null,
  ) {
    super(message);
  }
}

export interface CommandBody {
  value: unknown;
  /** the client's id (scoped later by tenant and actor), undefined: a fresh id */
  id: string | undefined;
  /** publication time, ms since the epoch */
  ts: number | undefined;
  ttlMs: number | undefined;
  expiresAt: number | undefined;
  token: string | undefined;
}

export interface PacketInfo {
  retain?: boolean;
  properties?: { userProperties?: Record<string, string | string[]>; messageExpiryInterval?: number };
}

const MAX_ID_LENGTH = 200;

/** The user property `k` (the first when repeated). */
function userProperty(packet: PacketInfo, k: string): string | undefined {
  const v = packet.properties?.userProperties?.[k];
  return Array.isArray(v) ? v[0] : v;
}

/** Parses and checks a command message; throws CommandRefused naming the field. */
export function parseCommand(payload: Buffer, packet: PacketInfo): CommandBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString("utf8"));
  } catch (e) {
    throw new CommandRefused("invalid_payload", `payload is not JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new CommandRefused("invalid_payload", "expected a JSON object with a 'value'");
  const body = parsed as Record<string, unknown>;
  if (body.id !== undefined && (typeof body.id !== "string" || body.id.length === 0 || body.id.length > MAX_ID_LENGTH)) throw new CommandRefused("invalid_payload", `id: a string of 1 to ${MAX_ID_LENGTH} characters is required`);
  const id = (body.id as string | undefined) ?? null;
  const refuse = (code: CommandRefused["code"], message: string) => new CommandRefused(code, message, id);
  // a retained command would run again at every gateway start (and for every new subscriber)
  if (packet.retain) throw refuse("refused_retained", "retained commands are refused: publish commands with retain false");
  if (!("value" in body)) throw refuse("invalid_payload", "value: required");
  const time = (field: "ts" | "ttlMs" | "expiresAt"): number | undefined => {
    const v = body[field];
    if (v === undefined) return undefined;
    // JSON.parse gives Infinity for 1e400: a life without end must never get through
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw refuse("invalid_payload", `${field}: a finite positive number of milliseconds is required, got ${JSON.stringify(v) ?? String(v)}`);
    return v;
  };
  const ts = time("ts");
  const expiresAt = time("expiresAt");
  if (ts === undefined && expiresAt === undefined) throw refuse("invalid_payload", "ts: the publication time (ms since the epoch) is required, or expiresAt; a command's life counts from its publication");
  const auth = userProperty(packet, "token") ?? userProperty(packet, "authorization");
  const token = auth?.replace(/^Bearer\s+/i, "") ?? (typeof body.token === "string" ? body.token : undefined);
  return { value: body.value, id: id ?? undefined, ts, ttlMs: time("ttlMs"), expiresAt, token };
}

/**
 * When the command stops being valid (ms since the epoch): the earliest of publication + ttlMs
 * (default `ttlMs` when the payload has no expiresAt), publication + maxTtlMs, the payload's expiresAt, and receipt + the MQTT 5 message
 * expiry interval left. A publication time in the future counts as now, so a wrong clock cannot
 * stretch a command's life past maxTtlMs from now.
 */
export function commandExpiry(c: Pick<CommandBody, "ts" | "ttlMs" | "expiresAt">, packet: PacketInfo, nowMs: number, limits: { ttlMs: number; maxTtlMs: number }): number {
  const published = Math.min(c.ts ?? nowMs, nowMs);
  // an expiresAt without ttlMs says the life itself: the default ttlMs does not shorten it
  const ttl = c.ttlMs ?? (c.expiresAt !== undefined ? limits.maxTtlMs : limits.ttlMs);
  let expiry = published + Math.min(ttl, limits.maxTtlMs);
  if (c.expiresAt !== undefined) expiry = Math.min(expiry, c.expiresAt);
  const left = packet.properties?.messageExpiryInterval;
  if (typeof left === "number" && Number.isFinite(left)) expiry = Math.min(expiry, nowMs + left * 1000);
  return expiry;
}

/**
 * The command id of a client's id: the same tenant, actor and id always give the same command (a QoS 1
 * redelivery finds its first command), and ids of different tenants or actors never meet, so one cannot
 * block another's command by using its id first (as REST's Idempotency-Key, server/api/commands.ts).
 */
export function scopedCommandId(tenant: string, actor: string, clientId: string, origin: "mqtt" | "nats" = "mqtt"): string {
  return `${origin}-${createHash("sha256").update(`${tenant}\u0000${actor}\u0000${clientId}`).digest("hex").slice(0, 32)}`;
}

/** The verdict on a command's token for a tag of a tenant: who it is, or why not. */
export type CommandAuthorization = { ok: true; sub: string } | { ok: false; code: "unauthorized" | "forbidden"; reason: string };

/**
 * Checks a JWT for writing `tag` of `tenant` (the subject's or topic's tenant): the same verification and
 * claims as REST. Given by the composition root; absent when the gateway has no auth keys (JWTs then refused).
 */
export type CommandAuthorizer = (token: string, target: { tag: string; tenant: string }) => Promise<CommandAuthorization>;

/** The answer published to a broker command's sender (MQTT ack topic, NATS ack subject). */
export interface CommandAnswer {
  /** the id the client sent (else the command's id); null when the message could not be read */
  id: string | null;
  /** the command's id in the log (GET /api/commands/:id), once recorded */
  command?: string;
  ok: boolean;
  status: "ok" | "error" | "expired" | "timeout" | "refused";
  error?: string;
  /** an AckCode (schemas/acks.ts), or a refusal before the log */
  code: AckCode | "unauthorized" | "forbidden" | "invalid_payload" | "refused_retained" | "idempotency_conflict";
  offset?: number;
}

/** A refusal or an answer that ends a command's handling early. */
export class Answered extends Error {
  override name = "Answered";
  constructor(readonly answer: CommandAnswer) {
    super(answer.error ?? answer.code);
  }
}

export const refused = (id: string | null, code: CommandAnswer["code"], error: string): Answered => new Answered({ id, ok: false, status: "refused", code, error });

export type CommandResult = CommandAnswer["status"];

/**
 * The metric result of an answer, from its code's meaning (not from the AckFrame's status, which puts a
 * driver's timeout under "error"): the outcome-unknown codes are "timeout", refusals before the log and
 * `refused_*` are "refused", the rest of the failures "error".
 */
export function commandResult(code: CommandAnswer["code"]): CommandResult {
  if (code === "ok" || code === "expired") return code;
  if (code === "timeout_outcome_unknown" || code === "outcome_unknown_restart") return "timeout";
  if (code.startsWith("refused_") || code === "unauthorized" || code === "forbidden" || code === "invalid_payload" || code === "idempotency_conflict") return "refused";
  return "error";
}
