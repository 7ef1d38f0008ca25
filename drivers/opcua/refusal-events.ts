// Which tag refusals are news. A tag the server cannot serve as configured (a missing node, a DataType
// the tag cannot hold, an item the server will not monitor) is refused at every start of the read loop;
// its `opcua.tag_refused` event is logged when the refusal is new or its reason changed, not again for
// the same refusal after a reconnect, a driver restart or a gateway restart; a tag refused before and
// served now gets one `opcua.tag_refusal_cleared`. What the log last said is read back once per driver
// instance (DriverInit.lastEvents: one query), then kept here.
import type { DriverInit, FrameSink } from "../contract.ts";

export const TAG_REFUSED = "opcua.tag_refused";
export const TAG_REFUSAL_CLEARED = "opcua.tag_refusal_cleared";

export interface TagRefusal {
  tag: string;
  nodeId: string;
  quality: number;
  /** for people; names the tag and its node */
  reason: string;
}

type Said = Omit<TagRefusal, "tag">;

export class RefusalEvents {
  /** the refusals the log holds as current, by tag; null until read back */
  private said: Map<string, Said> | null = null;
  private recalling: Promise<Map<string, Said>> | null = null;

  constructor(private readonly lastEvents: DriverInit["lastEvents"]) {}

  /** Logs each refusal that the log does not hold yet with the same quality and reason. */
  async report(tx: FrameSink, refusals: readonly TagRefusal[], signal: AbortSignal): Promise<void> {
    if (!refusals.length) return;
    const said = await this.recall();
    for (const r of refusals) {
      // an event of a run that has ended is refused by the sink: it must not count as said
      if (signal.aborted) return;
      const s = said.get(r.tag);
      if (s && s.quality === r.quality && s.reason === r.reason && s.nodeId === r.nodeId) continue;
      said.set(r.tag, { nodeId: r.nodeId, quality: r.quality, reason: r.reason });
      tx.event(TAG_REFUSED, { nodeId: r.nodeId, quality: r.quality, reason: r.reason }, r.tag);
    }
  }

  /** Once a start knows which tags it serves (reads or monitors): those refused before are served again. */
  async settle(tx: FrameSink, served: readonly { tag: string; nodeId: string }[], signal: AbortSignal): Promise<void> {
    const said = await this.recall();
    if (!said.size) return;
    for (const t of served) {
      const s = said.get(t.tag);
      if (!s || signal.aborted) continue;
      said.delete(t.tag);
      tx.event(TAG_REFUSAL_CLEARED, { nodeId: t.nodeId, reason: `tag '${t.tag}' is served again (refused before: ${s.reason})` }, t.tag);
    }
  }

  private recall(): Promise<Map<string, Said>> {
    if (this.said) return Promise.resolve(this.said);
    this.recalling ??= this.readBack().then((said) => (this.said = said));
    return this.recalling;
  }

  /** What the log last said per tag: refused (with what) or cleared. A log that cannot say: nothing (every refusal is logged). */
  private async readBack(): Promise<Map<string, Said>> {
    const said = new Map<string, Said>();
    const last = await this.lastEvents?.([TAG_REFUSED, TAG_REFUSAL_CLEARED]).catch(() => undefined);
    for (const [tag, e] of last ?? []) {
      const d = e.data;
      if (e.type === TAG_REFUSED && d && typeof d.reason === "string") said.set(tag, { nodeId: String(d.nodeId), quality: Number(d.quality), reason: d.reason });
    }
    return said;
  }
}
