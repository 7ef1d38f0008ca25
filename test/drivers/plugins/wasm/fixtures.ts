// Hand-written WebAssembly plugins for the runtime tests, assembled from text with binaryen (shipped with
// assemblyscript). The decoder's behaviour is chosen by the first byte of each payload, so that one batch
// can mix good and bad payloads: 0 frames, 1 trap, 2 loop checking should_stop, 3 grow memory until it
// fails and report the pages, 4 log 10,000 bytes (NULs: one byte each in UTF-8), 5 loop without ever checking (`loop br 0`), 6 grow
// until it fails and then trap (what an allocator does when memory runs out).
import binaryen from "assemblyscript/binaryen";
import { encodeFrames, type DecodedFrame } from "../../../../drivers/plugins/wasm/wire.ts";

export function wat(text: string): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    if (!m.validate()) throw new Error("invalid WAT module");
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** The frames mode 0 answers. */
export const FIXED_FRAMES: DecodedFrame[] = [
  { tag: "meter/energy", value: 1234.5, ts: 1_700_000_000_000_000, quality: 0 },
  { tag: "meter/on", value: true },
  { tag: "meter/serial", value: 9007199254740993n },
  { tag: "meter/name", value: "Zähler 7" },
];

const bytesLiteral = (b: Uint8Array) => [...b].map((x) => `\\${x.toString(16).padStart(2, "0")}`).join("");

/** The test decoder; `memory` is an export with `max` pages, or the env.memory import when max is undefined. */
export function testDecoder(opts: { max?: number } = {}): Uint8Array {
  const fixed = encodeFrames(FIXED_FRAMES);
  const memory = opts.max === undefined ? `(import "env" "memory" (memory 1))` : `(memory (export "memory") 1 ${opts.max})`;
  // pages frame: count 1, f64, no flags, tag "pages" (5), then 8 bytes of value written at 512+13
  const pagesTpl = "\\01\\00\\00\\00\\01\\00\\05\\00pages\\00\\00\\00\\00\\00\\00\\00\\00";
  return wat(`(module
    (import "env" "log" (func $log (param i32 i32 i32)))
    (import "env" "should_stop" (func $stop (result i32)))
    ${memory}
    (global $heap (mut i32) (i32.const 8192))
    (data (i32.const 1024) "${bytesLiteral(fixed)}")
    (data (i32.const 512) "${pagesTpl}")
    (func $pack (param $p i32) (param $n i32) (result i64)
      (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
    (func $growAll (block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $l))))
    (func (export "api_version") (result i32) (i32.const 1))
    (func (export "alloc") (param $n i32) (result i32) (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get $n)))
      (local.get $p))
    (func (export "dealloc") (param i32 i32))
    (func (export "decode") (param $p i32) (param $n i32) (result i64) (local $mode i32)
      (local.set $mode (i32.load8_u (local.get $p)))
      (if (i32.eq (local.get $mode) (i32.const 1)) (then unreachable))
      (if (i32.eq (local.get $mode) (i32.const 2)) (then (loop $l (br_if $l (i32.eqz (call $stop)))) (return (i64.const 0))))
      (if (i32.eq (local.get $mode) (i32.const 3)) (then
        (call $growAll)
        (f64.store (i32.const 525) (f64.convert_i32_u (memory.size)))
        (return (call $pack (i32.const 512) (i32.const 21)))))
      (if (i32.eq (local.get $mode) (i32.const 4)) (then (call $log (i32.const 2) (i32.const 30000) (i32.const 10000)) (return (i64.const 0))))
      (if (i32.eq (local.get $mode) (i32.const 5)) (then (loop $spin (br $spin))))
      (if (i32.eq (local.get $mode) (i32.const 6)) (then (call $growAll) unreachable))
      (call $pack (i32.const 1024) (i32.const ${fixed.length})))
  )`);
}

/**
 * A driver module: `poll` answers the fixed frames; `write` answers the code in the first byte of the
 * command's tag ("0..." ok, "4..." device_busy); `init` refuses a config that is not `{}` (2 bytes).
 */
export function testDriver(): Uint8Array {
  const fixed = encodeFrames(FIXED_FRAMES);
  return wat(`(module
    (import "env" "log" (func $log (param i32 i32 i32)))
    (memory (export "memory") 1 2)
    (global $heap (mut i32) (i32.const 8192))
    (data (i32.const 1024) "${bytesLiteral(fixed)}")
    (data (i32.const 512) "config refused")
    (func (export "api_version") (result i32) (i32.const 1))
    (func (export "alloc") (param $n i32) (result i32) (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get $n)))
      (local.get $p))
    (func (export "dealloc") (param i32 i32))
    (func (export "init") (param $p i32) (param $n i32) (result i32)
      (if (i32.ne (local.get $n) (i32.const 2)) (then (call $log (i32.const 4) (i32.const 512) (i32.const 14)) (return (i32.const 1))))
      (i32.const 0))
    (func (export "poll") (result i64)
      (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const ${fixed.length})))
    ;; the command is one encoded frame: count (4), type, flags, tag length (2), then the tag
    (func (export "write") (param $p i32) (param $n i32) (result i32)
      (i32.sub (i32.load8_u (i32.add (local.get $p) (i32.const 8))) (i32.const 48)))
  )`);
}
