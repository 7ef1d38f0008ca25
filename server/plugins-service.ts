// The plugins as a service of the gateway: the folder watcher (gateway.yml plugins.watch) started after
// the drivers and stopped before them, and the plugins' part of /readyz: degraded while a plugin is
// refused or runs unsigned (the development switch), or while a decoder backs off after crashes, with the reason.
import type { Logger } from "pino";
import type { PluginRegistry } from "../drivers/plugins/registry.ts";
import { PluginFolderWatcher } from "../drivers/plugins/watch.ts";
import type { ComponentStatus, Service } from "./context.ts";

export function pluginsService(registry: PluginRegistry, watchFolder: boolean, logger: Logger): Service {
  const watcher = watchFolder ? new PluginFolderWatcher(registry, { onError: (plugin, err) => logger.warn({ plugin, err }, "plugin folder change not applied") }) : null;
  return {
    name: "plugins",
    start: async () => watcher?.start(),
    stop: async () => watcher?.stop(),
    status(): ComponentStatus {
      const reasons: string[] = [];
      for (const p of registry.status()) {
        if (p.state === "refused" && p.refusal) reasons.push(p.refusal.message);
        if (p.unsigned) reasons.push(`plugin '${p.name}' runs unsigned (plugins.allowUnsigned is a development switch)`);
      }
      // a decoder backing off refuses every message it is given until its next start
      for (const [name, d] of Object.entries(registry.decoderStatus())) {
        if (d.backoffMs) reasons.push(`decoder '${name}' restarts in ${d.backoffMs} ms after repeated crashes (its messages are refused meanwhile): ${d.lastError ?? "unknown error"}`);
      }
      return { state: reasons.length ? "degraded" : "ok", reasons };
    },
  };
}
