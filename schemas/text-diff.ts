// A unified diff of two texts by lines (Myers' O((n+m)·d) algorithm), for the console's configuration
// editor: what an edit would change in a running file, shown before it is applied. Pure, no I/O; config
// files are small (hundreds of lines), so the whole edit script is kept in memory.

export interface DiffLine {
  op: " " | "-" | "+";
  text: string;
}

/** The shortest edit script turning lines `a` into lines `b`: kept, removed and added lines in order. */
export function diffLines(a: readonly string[], b: readonly string[]): DiffLine[] {
  const n = a.length;
  const m = b.length;
  const off = n + m + 1;
  const v = new Int32Array(2 * off + 1);
  // trace[d]: the furthest x on each diagonal k after d-1 edits (what step d starts from)
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= n + m && !found; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) x++, y++;
      v[off + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
  }
  const out: DiffLine[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d > 0; d--) {
    const t = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && t[off + k - 1]! < t[off + k + 1]!) ? k + 1 : k - 1;
    const prevX = t[off + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) out.push({ op: " ", text: a[--x]! }), y--;
    if (x === prevX) out.push({ op: "+", text: b[--y]! });
    else out.push({ op: "-", text: a[--x]! });
  }
  while (x > 0 && y > 0) out.push({ op: " ", text: a[--x]! }), y--;
  return out.reverse();
}

const linesOf = (text: string) => {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop(); // a final newline ends the last line, it does not start one
  return lines;
};

/** `diff -u` of two texts with `context` unchanged lines around each change; "" when they are equal. */
export function unifiedDiff(before: string, after: string, name: string, context = 3): string {
  const ops = diffLines(linesOf(before), linesOf(after));
  const changed = ops.map((o, i) => (o.op === " " ? -1 : i)).filter((i) => i >= 0);
  if (changed.length === 0) return "";
  let out = `--- a/${name}\n+++ b/${name}\n`;
  // the line numbers (1-based) in a and b at each op
  const at: { a: number; b: number }[] = [];
  let la = 1;
  let lb = 1;
  for (const o of ops) {
    at.push({ a: la, b: lb });
    if (o.op !== "+") la++;
    if (o.op !== "-") lb++;
  }
  let i = 0;
  while (i < changed.length) {
    const start = Math.max(0, changed[i]! - context);
    let end = changed[i]!;
    // hunks closer than two contexts apart are one hunk
    while (i < changed.length && changed[i]! - end <= 2 * context) end = changed[i++]!;
    end = Math.min(ops.length - 1, end + context);
    const slice = ops.slice(start, end + 1);
    const countA = slice.filter((o) => o.op !== "+").length;
    const countB = slice.filter((o) => o.op !== "-").length;
    // an empty side starts at the line before it (diff -u's convention)
    out += `@@ -${countA ? at[start]!.a : at[start]!.a - 1},${countA} +${countB ? at[start]!.b : at[start]!.b - 1},${countB} @@\n`;
    for (const o of slice) out += `${o.op}${o.text}\n`;
  }
  return out;
}
