// Named errors of the WebAssembly plugin runtime. Each says which plugin call failed and why, in words an
// operator can act on; the host turns them into event frames (plugin.trap, plugin.refused, ...).

/** The module cannot be loaded: a missing export, an unknown import, a memory without a ceiling. */
export class WasmRefusedError extends Error {
  override name = "WasmRefusedError";
  constructor(
    readonly what: string,
    message: string,
  ) {
    super(`wasm plugin refused: ${what}: ${message}`);
  }
}

/** A call trapped (unreachable, out-of-bounds access, out of memory, abort); the instance was re-created. */
export class WasmTrapError extends Error {
  override name = "WasmTrapError";
  constructor(
    readonly call: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`wasm plugin trapped in ${call}: ${message}`, options);
  }
}

/** A call ran past its time limit and stopped at the interrupt check; the instance was re-created. */
export class WasmDeadlineError extends Error {
  override name = "WasmDeadlineError";
  constructor(
    readonly call: string,
    readonly limitMs: number,
  ) {
    super(`wasm plugin call ${call} passed its time limit of ${limitMs} ms and was stopped`);
  }
}

/** The module answered with bytes the host cannot read (the output encoding is broken). */
export class WasmOutputError extends Error {
  override name = "WasmOutputError";
  constructor(
    readonly call: string,
    message: string,
  ) {
    super(`wasm plugin output of ${call} is malformed: ${message}`);
  }
}

/** The module failed on one payload of a batch (trap, time limit, refusal); told across the process boundary. */
export class WasmPayloadFailed extends Error {
  override name = "WasmPayloadFailed";
  constructor(readonly reason: string) {
    super(reason);
  }
}
