// The console's pages, in the order of the navigation. One list: the layout draws the menu from it, and a
// page that is not built yet renders <Placeholder> with its `later` text. A new page adds one entry here
// (or drops its `later`) and a folder under src/routes/.
export interface NavEntry {
  href: string;
  label: string;
  /** one line for the menu's tooltip and the page header */
  summary: string;
  /** not built yet: what the page will show, and which issue brings it */
  later?: string;
  /** only shown to these roles (default: everyone) */
  roles?: Role[];
}

export type Role = "viewer" | "operator" | "admin";

export const NAV: NavEntry[] = [
  { href: "/", label: "Overview", summary: "Throughput, commit latency, log, uplink and drivers at a glance" },
  { href: "/devices", label: "Devices", summary: "Each driver's state, last error and what to do, restarts, poll statistics" },
  { href: "/tags", label: "Tags", summary: "Live values with quality, filters and a trend per tag" },
  { href: "/write", label: "Write", summary: "Setpoints: checked, confirmed, acknowledged" },
  { href: "/history", label: "History & SQL", summary: "SQL over the log, charts and downloads" },
  { href: "/commands", label: "Commands", summary: "Who wrote what, when, from where, and the result" },
  { href: "/alarms", label: "Alarms", summary: "Active alarms in priority colours, acknowledge, shelve, history" },
  { href: "/bridges", label: "Bridges", summary: "MQTT uplink, OPC UA server, Modbus slave" },
  { href: "/config", label: "Configuration", summary: "The config files, validated as you type", roles: ["admin"] },
  { href: "/modbus", label: "Modbus inspector", summary: "Registers decoded in every type and byte/word order", roles: ["admin"] },
  { href: "/rules", label: "Rules", summary: "User rules: state, runs, time per run; edit with syntax check, dry run, enable/disable" },
  { href: "/plugins", label: "Plugins", summary: "Loaded plugins, upload and hot swap" },
];

/** The entry of a path: exact match, else the longest prefix (so /tags/x belongs to Tags). */
export function navEntryOf(path: string): NavEntry | undefined {
  return NAV.find((e) => e.href === path) ?? [...NAV].sort((a, b) => b.href.length - a.href.length).find((e) => e.href !== "/" && path.startsWith(e.href + "/"));
}
