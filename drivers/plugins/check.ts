// The config check of a plugin driver entry (server/config-check.ts, `edgectl check`): the plugin is
// there, passes the trust check, is a driver, and requested the scheme of the endpoint it is given;
// and of a decoder named by a driver's mapping: there, trusted, a decoder.
import { join } from "node:path";
import { readAuthorizedKeys, verifyPlugin } from "./trust.ts";

export interface PluginDriverEntry {
  id: string;
  plugin?: string | undefined;
  /** the URL of the entry's endpoint, if it has one */
  endpointUrl?: string | undefined;
}

/** Throws an Error whose message says what is wrong (a PluginRefused for trust). */
export async function checkPluginDriver(configDir: string, allowUnsigned: boolean, d: PluginDriverEntry): Promise<void> {
  if (!d.plugin) throw new Error("a driver of type plugin names its plugin: `plugin: <name>`");
  const keys = await readAuthorizedKeys(configDir);
  const p = await verifyPlugin(join(configDir, "plugins", d.plugin), { keys, allowUnsigned });
  if (p.manifest.kind !== "driver") throw new Error(`plugin '${d.plugin}' is a ${p.manifest.kind}, not a driver`);
  if (d.endpointUrl) {
    const scheme = d.endpointUrl.slice(0, d.endpointUrl.indexOf("://"));
    const allowed = p.manifest.capabilities.endpoints;
    if (!allowed.includes(scheme)) throw new Error(`capability: plugin '${d.plugin}' requests endpoints ${allowed.join(", ") || "none"}, the driver gives it ${d.endpointUrl}`);
  }
}

/** The decoder plugin `name` named by a mapping: there, trusted, a decoder. Throws saying what is wrong. */
export async function checkDecoderPlugin(configDir: string, allowUnsigned: boolean, name: string): Promise<void> {
  const keys = await readAuthorizedKeys(configDir);
  const p = await verifyPlugin(join(configDir, "plugins", name), { keys, allowUnsigned });
  if (p.manifest.kind !== "decoder") throw new Error(`plugin '${name}' is a ${p.manifest.kind}, not a decoder`);
}
