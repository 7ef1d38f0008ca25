// The AssemblyScript SDK of gateway plugins (ABI.md). A plugin re-exports `alloc`, `dealloc` and
// `api_version` from here, writes its frames with a FrameWriter, and calls `log` and `checkStop`.
// Built with the incremental runtime (the stub runtime never frees: 512 MiB after 1e6 calls).

@external("env", "log")
declare function host_log(level: i32, ptr: usize, len: usize): void;
@external("env", "now_ms")
declare function host_now_ms(): f64;
@external("env", "should_stop")
declare function host_should_stop(): i32;

/** The ABI version this SDK speaks. */
export function api_version(): i32 {
  return 1;
}

/** A buffer for the host to write input into; pinned so the collector keeps it until dealloc. */
export function alloc(len: i32): usize {
  return __pin(changetype<usize>(new ArrayBuffer(len)));
}

export function dealloc(ptr: usize, len: i32): void {
  __unpin(ptr);
}

export enum Level {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
}

/** One log line (the host cuts it at 4096 bytes). */
export function log(level: Level, msg: string): void {
  const bytes = String.UTF8.encode(msg);
  host_log(level, changetype<usize>(bytes), bytes.byteLength);
}

/** Wall clock in ms since the epoch, from the host. */
export function nowMs(): f64 {
  return host_now_ms();
}

/**
 * Call in long loops: past the call's time limit the host says stop and this traps, which unwinds the
 * call at once; the host then re-creates the instance. A loop that never checks is killed with its process.
 */
export function checkStop(): void {
  if (host_should_stop() != 0) unreachable();
}

/** What decode returns when it refuses its input (log the reason first). */
export const REFUSED: i64 = -1;

const T_NULL: u8 = 0;
const T_F64: u8 = 1;
const T_FALSE: u8 = 2;
const T_TRUE: u8 = 3;
const T_STRING: u8 = 4;
const T_I64: u8 = 5;
const F_TS: u8 = 1;
const F_QUALITY: u8 = 2;

/**
 * Writes frames in the ABI's output encoding into one buffer reused across calls (no allocation per
 * frame). Tags are `prefix + name`; per frame, `ts` then `quality` may follow the value.
 */
export class FrameWriter {
  private buf: ArrayBuffer = new ArrayBuffer(4096);
  private at: i32 = 4;
  private count: u32 = 0;
  private last: i32 = 0;
  private prefix: string = "";

  /** Starts a new output; call at the top of decode. */
  begin(prefix: string = ""): FrameWriter {
    this.at = 4;
    this.count = 0;
    this.prefix = prefix;
    return this;
  }

  f64(name: string, value: f64): FrameWriter {
    this.head(T_F64, name);
    this.ensure(8);
    store<f64>(this.ptr(), value);
    this.at += 8;
    return this;
  }

  i64(name: string, value: i64): FrameWriter {
    this.head(T_I64, name);
    this.ensure(8);
    store<i64>(this.ptr(), value);
    this.at += 8;
    return this;
  }

  bool(name: string, value: bool): FrameWriter {
    this.head(value ? T_TRUE : T_FALSE, name);
    return this;
  }

  null(name: string): FrameWriter {
    this.head(T_NULL, name);
    return this;
  }

  str(name: string, value: string): FrameWriter {
    this.head(T_STRING, name);
    const n = String.UTF8.byteLength(value);
    this.ensure(4 + n);
    store<u32>(this.ptr(), n);
    this.at += 4;
    String.UTF8.encodeUnsafe(changetype<usize>(value), value.length, this.ptr());
    this.at += n;
    return this;
  }

  /** Source timestamp of the last frame, microseconds since the epoch (before quality). */
  ts(micros: f64): FrameWriter {
    assert((load<u8>(this.base() + this.last + 1) & F_QUALITY) == 0, "ts after quality");
    this.flag(F_TS);
    this.ensure(8);
    store<f64>(this.ptr(), micros);
    this.at += 8;
    return this;
  }

  /** OPC UA StatusCode of the last frame (default Good). */
  quality(code: u32): FrameWriter {
    this.flag(F_QUALITY);
    this.ensure(4);
    store<u32>(this.ptr(), code);
    this.at += 4;
    return this;
  }

  /** Ends the output: the packed (ptr << 32 | len) that decode and poll return. */
  finish(): i64 {
    store<u32>(this.base(), this.count);
    return (i64(this.base()) << 32) | i64(this.at);
  }

  private head(type: u8, name: string): void {
    const p = String.UTF8.byteLength(this.prefix);
    const n = String.UTF8.byteLength(name);
    assert(p + n > 0 && p + n < 65536, "tag length");
    this.ensure(4 + p + n);
    this.last = this.at;
    const at = this.ptr();
    store<u8>(at, type);
    store<u8>(at, 0, 1);
    store<u16>(at, u16(p + n), 2);
    String.UTF8.encodeUnsafe(changetype<usize>(this.prefix), this.prefix.length, at + 4);
    String.UTF8.encodeUnsafe(changetype<usize>(name), name.length, at + 4 + p);
    this.at += 4 + p + n;
    this.count++;
  }

  private flag(f: u8): void {
    const at = this.base() + this.last + 1;
    store<u8>(at, load<u8>(at) | f);
  }

  private ensure(n: i32): void {
    if (this.at + n <= this.buf.byteLength) return;
    let size = this.buf.byteLength * 2;
    while (size < this.at + n) size *= 2;
    const next = new ArrayBuffer(size);
    memory.copy(changetype<usize>(next), this.base(), this.at);
    this.buf = next;
  }

  private base(): usize {
    return changetype<usize>(this.buf);
  }

  private ptr(): usize {
    return this.base() + this.at;
  }
}
