// MQTT topic templates of the uplink and its commands.

/** Fills {tenant}, {device} and {tag} in a topic template. */
export function fillTopic(template: string, vars: { tenant?: string; device?: string; tag?: string }): string {
  return template.replace(/\{(tenant|device|tag)\}/g, (_m, k: "tenant" | "device" | "tag") => vars[k] ?? "");
}
