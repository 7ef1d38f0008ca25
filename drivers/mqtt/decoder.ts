// Payload decoders for the MQTT source: a mapping with `decoder: <plugin name>` hands its payloads to a
// decoder plugin (JavaScript or WebAssembly, running in its own process) instead of reading a JSON or
// MessagePack path. Messages that arrive together are batched, so the crossing to the plugin's process
// (~25-35 µs a round trip) is paid once per batch: with the driver's pipelined window, a burst of QoS 1
// messages becomes one call.
import type { PayloadFailure, PluginFrame } from "../plugins/protocol.ts";

/**
 * A decoder plugin as the driver sees it: payloads in, per payload (in order) its frames or why the
 * decoder failed on it (that message alone is refused). Rejects when the whole batch failed (the
 * plugin's process crashed, hung, or is down): every message of the batch is refused.
 */
export interface PayloadDecoder {
  decode(batch: Uint8Array[]): Promise<(PluginFrame[] | PayloadFailure)[]>;
}

/** The decoder failed on this one payload; the reason comes from the plugin. */
export class PayloadUndecodable extends Error {
  override name = "PayloadUndecodable";
}

/** Finds a loaded decoder plugin by name (the gateway's plugin host); undefined when there is none. */
export type DecoderResolver = (name: string) => PayloadDecoder | undefined;

/** The most payloads one call carries; a larger burst is split. */
export const MAX_DECODE_BATCH = 256;

interface Waiting {
  payload: Uint8Array;
  resolve(frames: PluginFrame[]): void;
  reject(e: unknown): void;
}

/** Collects the payloads of one turn of the event loop and decodes them in one call. */
export class DecodeBatcher {
  private waiting: Waiting[] = [];
  private scheduled = false;

  constructor(private readonly decoder: PayloadDecoder) {}

  decode(payload: Uint8Array): Promise<PluginFrame[]> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ payload, resolve, reject });
      if (this.waiting.length >= MAX_DECODE_BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.waiting;
    if (batch.length === 0) return;
    this.waiting = [];
    this.decoder.decode(batch.map((w) => w.payload)).then(
      (out) =>
        batch.forEach((w, i) => {
          const o = out[i] ?? [];
          if (Array.isArray(o)) w.resolve(o);
          else w.reject(new PayloadUndecodable(o.failed));
        }),
      (e) => batch.forEach((w) => w.reject(e)),
    );
  }
}
