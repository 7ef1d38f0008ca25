// Numbers, times and ages as operators read them.
export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) >= 100 ? 1 : 3).replace(/\.?0+$/, "");
  return String(v);
}

/** "3 s", "4 min", "2 h", "5 d" */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const s = Math.max(0, ms / 1000);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

// one formatter for every call: toLocaleTimeString builds a new one each time (tens of µs per cell)
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

export function formatTime(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return "—";
  return TIME.format(ms);
}

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatRate(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)} k/s` : `${n.toFixed(n < 10 ? 1 : 0)} /s`;
}

/** A driver's state as a colour class: good (Active), uncertain (starting, backing off), bad (the rest). */
export function driverStateClass(state: string): "good" | "uncertain" | "bad" {
  if (state === "Active") return "good";
  return state === "Backoff" || state === "Loading" || state === "Init" || state === "Connected" ? "uncertain" : "bad";
}
