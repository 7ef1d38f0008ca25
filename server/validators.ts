// Per driver type, extra checks of its tags at config load (e.g. Modbus register overlaps).
import type { TagValidator } from "./config.ts";

export const tagValidators: ReadonlyMap<string, TagValidator> = new Map<string, TagValidator>([]);
