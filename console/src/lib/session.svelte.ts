// The logged-in user, kept in memory only (a bearer token, so there is no cookie to forge a request
// with: no CSRF surface). A request that meets a 401 asks for a login through `requireLogin()`: the layout
// shows the login dialog over the page, and the request is retried once the user has logged in again, so
// an expired session never loses the page the operator was on.
import { untrack } from "svelte";
import type { Role } from "./nav.ts";

export interface Session {
  token: string | null;
  user: string | null;
  role: Role | null;
  /** epoch ms */
  expiresAt: number;
  /** the login dialog is open; `reason` says why (expired, first visit) */
  loginOpen: boolean;
  reason: string;
}

export const session: Session = $state({ token: null, user: null, role: null, expiresAt: 0, loginOpen: false, reason: "" });

let waiters: Array<() => void> = [];

const ASK = "Log in to continue";

/**
 * Resolves once a user is logged in (at once when one is); opens the login dialog otherwise. Untracked:
 * pages call it (through api() and LiveStream) inside their $effects, which must not re-run whenever the
 * session changes. A plain ask never replaces the reason an open dialog already gives (session ended).
 */
export function requireLogin(reason = ASK): Promise<void> {
  return untrack(() => {
    if (session.token && session.expiresAt > Date.now()) return Promise.resolve();
    session.token = null;
    if (!session.loginOpen || reason !== ASK) session.reason = reason;
    session.loginOpen = true;
    return new Promise<void>((resolve) => waiters.push(resolve));
  });
}

export interface LoginAnswer {
  token: string;
  user: string;
  role: Role;
  expiresAt: string;
}

/** Installs a login's token and releases every request that waited for it. */
export function loggedIn(a: LoginAnswer): void {
  session.token = a.token;
  session.user = a.user;
  session.role = a.role;
  session.expiresAt = Date.parse(a.expiresAt);
  session.loginOpen = false;
  const w = waiters;
  waiters = [];
  for (const resolve of w) resolve();
  scheduleRefresh();
}

export function logout(): void {
  session.token = null;
  session.user = null;
  session.role = null;
  session.expiresAt = 0;
  if (refreshTimer) clearTimeout(refreshTimer);
  void requireLogin("Logged out");
}

export const can = {
  write: () => session.role === "operator" || session.role === "admin",
  admin: () => session.role === "admin",
};

// The session is renewed a minute before it ends only when the user did something since the last renewal:
// a console left open on a wall screen falls back to the login dialog when its token ends.
let active = false;
let refreshTimer: ReturnType<typeof setTimeout> | null = null;
if (typeof window !== "undefined") {
  for (const ev of ["pointerdown", "keydown"]) window.addEventListener(ev, () => (active = true), { passive: true });
}

function scheduleRefresh(): void {
  if (refreshTimer) clearTimeout(refreshTimer);
  const wait = Math.max(1000, session.expiresAt - Date.now() - 60_000);
  refreshTimer = setTimeout(refresh, wait);
}

async function refresh(): Promise<void> {
  if (!session.token || !active) return;
  active = false;
  try {
    const r = await fetch("/api/login/refresh", { method: "POST", headers: { authorization: `Bearer ${session.token}` } });
    if (r.ok) loggedIn((await r.json()) as LoginAnswer);
  } catch {
    // the gateway is unreachable: the token runs out and the next request asks for a login
  }
}
