// Per driver type, extra checks of its tags at config load (e.g. Modbus register overlaps).
import type { TagValidator } from "./config.ts";
import { validateModbusTags } from "../drivers/modbus/index.ts";

export const tagValidators: ReadonlyMap<string, TagValidator> = new Map<string, TagValidator>([["modbus", validateModbusTags]]);
