// Reads what the host must know of a core WebAssembly module before instantiating it: its imports with
// their kinds and its memory limits (imported or defined). The JS API gives import names but not memory
// limits, and the memory ceiling per instance depends on them, so the two sections are parsed here.
import { WasmRefusedError } from "./errors.ts";

export interface MemoryLimits {
  minPages: number;
  maxPages?: number;
  imported: boolean;
}

export interface ModuleShape {
  imports: { module: string; name: string; kind: "function" | "table" | "memory" | "global" | "tag" }[];
  memory?: MemoryLimits;
}

const KINDS = ["function", "table", "memory", "global", "tag"] as const;

/** true for a Component Model binary (layer 1), false for a core module; throws for anything else. */
export function isComponent(bytes: Uint8Array): boolean {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmRefusedError("format", "not a WebAssembly binary (no \\0asm header)");
  }
  // core modules carry version 1 (01 00 00 00); components version 0x0d with layer 1 (0d 00 01 00)
  return bytes[6] === 1;
}

export function inspectModule(bytes: Uint8Array): ModuleShape {
  const r = new Reader(bytes, 8);
  const shape: ModuleShape = { imports: [] };
  while (r.at < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.at + size;
    if (id === 2) readImports(r, shape);
    else if (id === 5 && r.u32() > 0) shape.memory = { ...r.limits(), imported: false };
    r.at = end;
  }
  return shape;
}

function readImports(r: Reader, shape: ModuleShape): void {
  for (let n = r.u32(); n > 0; n--) {
    const module = r.name();
    const name = r.name();
    const kindByte = r.byte();
    const kind = KINDS[kindByte];
    if (!kind) throw new WasmRefusedError("format", `import ${module}.${name} has unknown kind ${kindByte}`);
    shape.imports.push({ module, name, kind });
    if (kind === "function") r.u32();
    else if (kind === "table") {
      r.byte();
      r.limits();
    } else if (kind === "memory") shape.memory = { ...r.limits(), imported: true };
    else if (kind === "global") r.at += 2;
    else {
      r.byte();
      r.u32();
    }
  }
}

class Reader {
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
  ) {}
  byte(): number {
    if (this.at >= this.bytes.length) throw new WasmRefusedError("format", "module truncated");
    return this.bytes[this.at++]!;
  }
  /** unsigned LEB128; memory64 limits are read the same way (pages fit a double) */
  u32(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
  }
  name(): string {
    const len = this.u32();
    const s = new TextDecoder().decode(this.bytes.subarray(this.at, this.at + len));
    this.at += len;
    return s;
  }
  limits(): { minPages: number; maxPages?: number } {
    const flags = this.byte();
    const minPages = this.u32();
    return flags & 1 ? { minPages, maxPages: this.u32() } : { minPages };
  }
}
