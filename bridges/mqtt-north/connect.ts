// The one place the uplink reaches into mqtt.js (5.16) internals: its private stream builder. mqtt.js
// opens each connection from its reconnect timer by calling the builder synchronously after clearing
// that timer, so a throw there (Bun's TLS layer throws on a certificate it cannot load, e.g. a DER file
// where PEM is expected) escaped as an uncaught exception and reconnecting stopped for good while the
// uplink looked healthy. Here a throw becomes a stream that fails at once with a coded error: mqtt.js
// emits it as the client's 'error' (logged, counted and shown in /readyz by the uplink like any failed
// connection) and then 'close', which schedules the next try with the uplink's backoff.
import { Duplex } from "node:stream";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

/** A connection attempt that threw inside mqtt.js instead of failing on its socket. */
export class ConnectThrew extends Error {
  override name = "ConnectThrew";
  /** a code makes mqtt.js pass the stream's error on to the client's 'error' listeners */
  readonly code = "connect_threw";
  constructor(cause: unknown) {
    super(`opening the connection threw: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

type StreamBuilder = (client: MqttClient) => Duplex;
/** mqtt.js's private field (client.d.ts: `private streamBuilder`), checked at creation */
type WithBuilder = { streamBuilder?: StreamBuilder };

/** A stream that takes the CONNECT packet, then fails with `err` (and closes) on the next tick. */
function failedStream(err: Error): Duplex {
  const s = new Duplex({
    read() {},
    write(_chunk, _enc, done) {
      done();
    },
  });
  process.nextTick(() => s.destroy(err));
  return s;
}

/**
 * mqtt.connect() with every connection attempt guarded (see the header). Throws at once if this
 * mqtt.js has no stream builder to guard: an upgrade must fail loudly here, not lose the guard silently.
 */
export function connectGuarded(url: string, opts: IClientOptions): MqttClient {
  const client = mqtt.connect(url, { ...opts, manualConnect: true });
  const internals = client as unknown as WithBuilder;
  const build = internals.streamBuilder;
  if (typeof build !== "function") {
    client.end(true);
    throw new Error("mqtt.js has no streamBuilder to guard (written for mqtt 5.16): check bridges/mqtt-north/connect.ts after an upgrade");
  }
  internals.streamBuilder = (c) => {
    try {
      return build(c);
    } catch (e) {
      return failedStream(new ConnectThrew(e));
    }
  };
  client.connect();
  return client;
}
