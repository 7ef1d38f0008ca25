// The tag catalog as GET /api/tags gives it, and its rows turned into live values (quality as a code).
import { qualityCode } from "#schemas/quality.ts";
import { api } from "./api.ts";

export interface CatalogTag {
  tag: string;
  driver: string;
  type: string;
  unit: string | null;
  description: string | null;
  access: "R" | "W" | "RW";
  /** write limits (engineering units), when the tag has them */
  min?: number;
  max?: number;
  tenant: string;
  value: unknown;
  quality: string;
  ts: string | null;
  offset: number | null;
}

export const loadCatalog = () => api<CatalogTag[]>("/api/tags");

/** A catalog row as a seed of the live store (names back to StatusCodes; no value yet: offset 0). */
export function seedRow(t: CatalogTag) {
  return { tag: t.tag, value: t.value, quality: qualityCode(t.quality.replace(/ \(0x[0-9a-f]+\)$/, "")) ?? 0x80000000, ts: t.ts ? Date.parse(t.ts) : 0, offset: t.offset ?? 0 };
}
