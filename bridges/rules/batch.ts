// A batch of trigger messages as it crosses into a rule's sandbox, and into the rules worker's thread:
// columns of numbers (tag id, kind, value, quality, ts per message) that are one transferable buffer,
// because parsing JSON inside QuickJS cost more than the rule itself. Tag names travel once: a batch
// carries only the names it gave new ids, and the sandbox appends them to its table in order.
import type { RuleMessage } from "./sandbox.ts";

/** Columns per message: tag id, kind (0 number, 1 true, 2 false, 3 null, 4 extras[value]), value, quality, ts */
export const COLUMNS = 5;

export interface EncodedBatch {
  cols: Float64Array;
  /** JSON array of the values that are not numbers, booleans or null ("" when none) */
  extras: string;
  /** tag names this batch gave ids to, in id order after the ones sent before */
  names: string[];
}

/** The host's side of a sandbox's tag table: ids by name. A new sandbox (a new table inside) needs a new TagTable. */
export class TagTable {
  private readonly ids = new Map<string, number>();

  encode(msgs: readonly RuleMessage[]): EncodedBatch {
    const cols = new Float64Array(msgs.length * COLUMNS);
    const extras: unknown[] = [];
    const names: string[] = [];
    for (let i = 0, k = 0; i < msgs.length; i++, k += COLUMNS) {
      const m = msgs[i]!;
      let id = this.ids.get(m.tag);
      if (id === undefined) {
        id = this.ids.size;
        this.ids.set(m.tag, id);
        names.push(m.tag);
      }
      cols[k] = id;
      const v = m.value;
      if (typeof v === "number") cols[k + 2] = v;
      else if (v === true) cols[k + 1] = 1;
      else if (v === false) cols[k + 1] = 2;
      else if (v === null) cols[k + 1] = 3;
      else {
        cols[k + 1] = 4;
        cols[k + 2] = extras.push(typeof v === "bigint" ? v.toString() : v) - 1;
      }
      cols[k + 3] = m.quality;
      cols[k + 4] = m.ts;
    }
    return { cols, extras: extras.length ? JSON.stringify(extras) : "", names };
  }
}
