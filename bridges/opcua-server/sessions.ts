// Session limits of the OPC UA server. A client that vanishes without closing (killed, cable pulled)
// keeps its session until the session timeout it asked for runs out: node-opcua grants up to 50 min,
// so twenty vanished clients would lock every new session out (BadTooManySessions) for that long.
// The requested timeout is capped here (maxSessionTimeoutMs), and every refused session is logged and
// counted. Uses node-opcua's public "request"/"response" server events only.
import { CreateSessionRequest, StatusCodes, type OPCUAServer } from "node-opcua";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";

export interface SessionLimits {
  maxSessions: number;
  maxSessionTimeoutMs: number;
}

/** What node-opcua grants a client that asks for 0 (no preference). */
const DEFAULT_SESSION_TIMEOUT_MS = 30_000;

/** One warning per this many ms at most while sessions are being refused (a retrying client floods). */
const REFUSAL_LOG_EVERY_MS = 5000;

const SESSIONS = "edge_opcua_sessions";
const SUBSCRIPTIONS = "edge_opcua_subscriptions";
const REFUSED = "edge_opcua_sessions_refused_total";

/** Counts of the session guard, for status() and /metrics. */
export class SessionGuard {
  /** sessions refused since start, by StatusCode name */
  readonly refused = new Map<string, number>();
  private lastLogAt = 0;
  private unlogged = 0;
  private refusedCounter: Counter<"reason"> | null = null;

  constructor(
    private readonly server: OPCUAServer,
    private readonly limits: SessionLimits,
    private readonly logger: Logger,
  ) {
    server.on("request", (request) => {
      // the listener runs before the CreateSession handler reads the request (base_server on_request)
      if (request instanceof CreateSessionRequest) {
        const asked = request.requestedSessionTimeout || DEFAULT_SESSION_TIMEOUT_MS;
        request.requestedSessionTimeout = Math.min(asked, limits.maxSessionTimeoutMs);
      }
    });
    server.on("response", (response) => {
      const result = response.responseHeader.serviceResult;
      if (result.value !== StatusCodes.BadTooManySessions.value) return;
      this.countRefusal(result.name);
    });
  }

  get sessions(): number {
    return this.server.currentSessionCount;
  }

  get subscriptions(): number {
    return this.server.currentSubscriptionCount;
  }

  get refusedTotal(): number {
    let n = 0;
    for (const v of this.refused.values()) n += v;
    return n;
  }

  private countRefusal(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    this.refusedCounter?.inc({ reason });
    const now = Date.now();
    if (now - this.lastLogAt < REFUSAL_LOG_EVERY_MS) {
      this.unlogged++;
      return;
    }
    this.logger.warn(
      { reason, sessions: this.sessions, maxSessions: this.limits.maxSessions, maxSessionTimeoutMs: this.limits.maxSessionTimeoutMs, alsoRefusedSinceLastLog: this.unlogged },
      `opcua: session refused (${reason}); sessions of vanished clients end after at most ${this.limits.maxSessionTimeoutMs} ms`,
    );
    this.lastLogAt = now;
    this.unlogged = 0;
  }

  /**
   * Sessions and subscriptions (gauges read at scrape time) and refused sessions on the gateway's
   * registry. A gauge of a previous instance (a restarted bridge) is replaced: it would read a stopped server.
   */
  register(registry: Registry): void {
    for (const name of [SESSIONS, SUBSCRIPTIONS]) registry.removeSingleMetric(name);
    const guard = this;
    new Gauge({ name: SESSIONS, help: "OPC UA server sessions open", registers: [registry], collect() { this.set(guard.sessions); } });
    new Gauge({ name: SUBSCRIPTIONS, help: "OPC UA server subscriptions open", registers: [registry], collect() { this.set(guard.subscriptions); } });
    this.refusedCounter =
      (registry.getSingleMetric(REFUSED) as Counter<"reason"> | undefined) ??
      new Counter({ name: REFUSED, help: "OPC UA sessions refused (BadTooManySessions)", labelNames: ["reason"], registers: [registry] });
  }
}
