// Payload decoders for the MQTT source: a mapping with `decoder: <plugin name>` hands its payloads to a
// decoder plugin (JavaScript or WebAssembly, running in its own process) instead of reading a JSON or
// MessagePack path. Messages that arrive together are batched, so the crossing to the plugin's process
// (~25-35 µs a round trip) is paid once per batch: with the driver's pipelined window, a burst of QoS 1
// messages becomes one call.
import type { PluginFrame } from "../plugins/protocol.ts";

/** A decoder plugin as the driver sees it: payloads in, one frame list per payload out, in order. */
export interface PayloadDecoder {
  decode(batch: Uint8Array[]): Promise<PluginFrame[][]>;
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
      (out) => batch.forEach((w, i) => w.resolve(out[i] ?? [])),
      (e) => batch.forEach((w) => w.reject(e)),
    );
  }
}
