// The files of `edgectl plugin new driver|decoder <name>`: a plugin that signs and loads as it is, and
// shows the whole contract (drivers/plugins/protocol.ts) in a few commented lines.
import { PLUGIN_API_VERSION } from "../drivers/plugins/protocol.ts";

function manifest(kind: "driver" | "decoder", name: string): string {
  return `# The plugin's manifest. \`edgectl sign\` fills [files] with the SHA-256 of every file and signs this file.
name = "${name}"
kind = "${kind}"
version = "0.1.0"
description = "${kind === "driver" ? "A driver" : "A decoder"} made with edgectl plugin new"
entry = "index.js"
# the plugin API versions this plugin works with (the gateway speaks ${PLUGIN_API_VERSION})
api = { min = ${PLUGIN_API_VERSION}, max = ${PLUGIN_API_VERSION} }
# the URL schemes of endpoints this plugin may be given and open (e.g. ["tcp"]); none here
capabilities = { endpoints = [] }
`;
}

const DRIVER = `// A plugin driver: the gateway calls init once, connect, then poll every intervalMs (drivers.yml config),
// each call in this plugin's own process with a deadline. Return readings; throw on a device error
// (the gateway marks the tags Bad and restarts the plugin with backoff).
/** @param {{ log(level: string, msg: string): void, now(): number }} host */
export default (host) => {
  /** @type {{ tag: string, type: string }[]} */
  let tags = [];
  let amplitude = 10;
  return {
    /** @param {{ id: string, config: Record<string, unknown>, tags: { tag: string, type: string }[], endpoint?: string }} init */
    init(init) {
      tags = init.tags;
      if (init.config.amplitude !== undefined) {
        if (typeof init.config.amplitude !== "number") throw new Error("config.amplitude: must be a number");
        amplitude = init.config.amplitude;
      }
      host.log("info", \`\${init.id}: \${tags.length} tags\`);
    },
    async connect() {},
    /** @returns {{ tag: string, value: number | boolean | string | null, ts?: number, quality?: number }[]} */
    poll() {
      const t = host.now() / 1000;
      return tags.map((tag, i) => ({ tag: tag.tag, value: amplitude * Math.sin(t + i) }));
    },
    /** @param {{ id: string, tag: string, value: unknown }} cmd */
    write(cmd) {
      return { ok: false, code: "not_supported", error: \`\${cmd.tag} is read-only\` };
    },
    shutdown() {},
  };
};
`;

const DECODER = `// A plugin decoder: raw payloads in (MQTT messages, TCP chunks, Modbus blocks), frames out, one array
// per payload, in order. This one reads JSON objects {"tag": value, ...}.
/** @param {{ log(level: string, msg: string): void, now(): number }} host */
export default (host) => {
  const text = new TextDecoder();
  return {
    /** @param {Uint8Array[]} batch */
    decode(batch) {
      return batch.map((payload) => {
        try {
          return Object.entries(JSON.parse(text.decode(payload))).map(([tag, value]) => ({ tag, value }));
        } catch (e) {
          host.log("warn", \`payload skipped: \${e.message}\`);
          return [];
        }
      });
    },
  };
};
`;

function readme(kind: "driver" | "decoder", name: string): string {
  const use =
    kind === "driver"
      ? `In drivers.yml:\n\n    - id: ${name}1\n      plugin: ${name}\n      config: { intervalMs: 1000, amplitude: 10 }\n\nand tags with \`driver: ${name}1\` in variables.yml.`
      : "A decoder is named by the source that feeds it raw payloads.";
  return `# ${name}\n\nA ${kind} plugin for the edge gateway (see drivers/plugins/README.md in the gateway).\n\n    edgectl sign ${name} --key <signer>.key     # after every change\n    edgectl verify ${name} --config <config dir>\n    cp -r ${name} <config>/plugins/             # or: edgectl plugin load ${name}\n\n${use}\n`;
}

export function pluginScaffold(kind: "driver" | "decoder", name: string): Record<string, string> {
  return { "plugin.toml": manifest(kind, name), "index.js": kind === "driver" ? DRIVER : DECODER, "README.md": readme(kind, name) };
}
