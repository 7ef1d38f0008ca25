// The second layer of the SQL sandbox (see storage/README.md "SQL sandbox"), independent of the walk in
// storage/sql-gate.ts: DuckDB binds and plans the query on the reader's own connection
// (json_serialize_plan, unoptimized, nothing runs) and every scan it resolved is checked. Only the
// views' base tables, the archive through the views' own Parquet scan (ARCHIVE_SCAN_MARKER) and the
// allowed generators may be read, and for a scoped reader every scan of raw rows or of the catalog must
// sit under the scoped view's filter: a name the walk got wrong shows up here and is refused.
import type { DuckDBConnection } from "@duckdb/node-api";
import { QueryError, QueryRefused } from "./errors.ts";
import { ARCHIVE_SCAN_MARKER, SCOPE_TAGS, type ReadScope } from "./views.ts";

/** Table functions a SELECT may call: pure generators, no I/O, no catalog. */
export const ALLOWED_TABLE_FUNCTIONS: ReadonlySet<string> = new Set(["range", "generate_series", "unnest"]);

/** Tables the views read (in the log's database); the scope table lives in each connection's temp catalog. */
const VIEW_BASE_TABLES = new Set(["log", "meta", "tag_catalog"]);

/** Plan operators that write, change the session or run other statements: never part of a SELECT's plan. */
const FORBIDDEN_OPERATOR = /^LOGICAL_(COPY|EXPORT|PRAGMA|SET|RESET|ATTACH|DETACH|LOAD|INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP|VACUUM|TRANSACTION|EXECUTE|PREPARE|EXPLAIN)(_|$)/;

/** A node of DuckDB's JSON trees (parse tree or plan), and the small readers both walks use. */
export type Node = Record<string, unknown>;
export const lower = (v: unknown) => String(v ?? "").toLowerCase();
export const isObject = (v: unknown): v is Node => !!v && typeof v === "object" && !Array.isArray(v);
export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

const UNSCOPED: ReadScope = { tenant: null, tags: null };

/** The scope filters a plan node sits under. */
interface Guard {
  tenant: boolean;
  tags: boolean;
  /** inside a scope filter's own list (its catalog scan is the filter, not data shown) */
  list: boolean;
}
const NO_GUARD: Guard = { tenant: false, tags: false, list: false };

/**
 * Walks an unoptimized plan. A scoped view is `SELECT * FROM <view> WHERE tag IN (<tenant's tags>) AND
 * tag IN (<the connection's list>)`, planned as a FILTER on the marks of a chain of MARK joins whose
 * right sides are those lists. Every scan of raw rows (the hot table, the archive) and of the catalog
 * must sit on the left of such a chain for each restriction of the reader's scope: a name that DuckDB
 * resolved to an unscoped object, whatever the walk thought, fails here.
 */
class PlanWalk {
  constructor(
    private readonly plan: PlanCheck,
    private readonly scope: ReadScope,
  ) {}

  visit(n: unknown, g: Guard): void {
    if (Array.isArray(n)) return n.forEach((x) => this.visit(x, g));
    if (!isObject(n)) return;
    if (typeof n.type === "string" && n.type.startsWith("LOGICAL_")) return this.operator(n, g);
    for (const v of Object.values(n)) this.visit(v, g);
  }

  private operator(n: Node, g: Guard): void {
    const type = String(n.type);
    if (FORBIDDEN_OPERATOR.test(type)) throw new QueryRefused(`the plan of the query holds ${type}: not a plain SELECT`);
    if (type === "LOGICAL_GET") {
      this.plan.checkScan(n);
      const restricted = this.scope.tenant !== null || this.scope.tags !== null;
      if (restricted && !g.list && this.plan.isTenantData(n) && !((this.scope.tenant === null || g.tenant) && (this.scope.tags === null || g.tags))) {
        throw new QueryRefused(`the query would read rows outside the reader's scope (not through the documented views)`);
      }
    }
    if (type === "LOGICAL_FILTER" && this.scopeFilter(n, g)) return;
    for (const v of Object.values(n)) this.visit(v, g);
  }

  /** A scope filter: visits its parts with the guards it gives and answers true; false when `n` is not one. */
  private scopeFilter(n: Node, g: Guard): boolean {
    const marks = list(n.expressions).filter((e) => isObject(e) && e.type === "BOUND_REF" && e.alias === "SUBQUERY").length;
    const chain: Node[] = [];
    let left: unknown = list(n.children)[0];
    while (isObject(left) && left.type === "LOGICAL_COMPARISON_JOIN" && left.join_type === "MARK") {
      chain.push(left);
      left = list(left.children)[0];
    }
    if (chain.length === 0 || marks !== list(n.expressions).length || marks < chain.length) return false;
    const inner = { ...g };
    for (const j of chain) {
      const right = list(j.children)[1];
      if (this.plan.isScopeList(right, "tenant", this.scope)) inner.tenant = true;
      else if (this.plan.isScopeList(right, "tags", this.scope)) inner.tags = true;
      else return false;
    }
    for (const j of chain) this.visit(list(j.children)[1], { ...g, list: true });
    this.visit(left, inner);
    return true;
  }
}

export class PlanCheck {
  /** `database`: the log database's catalog name (current_database()). */
  constructor(private readonly database: string) {}

  /**
   * The second layer: binds and plans `sql` on `conn` (its scope's temp views included) without running
   * it, and checks every scan DuckDB resolved. Throws QueryRefused, or QueryError for a query DuckDB
   * cannot bind (its binder message).
   */
  async check(conn: DuckDBConnection, sql: string, scope: ReadScope = UNSCOPED): Promise<void> {
    const r = await conn.runAndReadAll(`SELECT json_serialize_plan($1::VARCHAR)`, [sql]);
    const out = JSON.parse(String(r.getRows()[0]![0])) as { error: boolean; error_message?: string; plans?: unknown[] };
    if (out.error) throw new QueryError(String(out.error_message ?? "the query cannot be planned").split("\n")[0]!);
    // the plan is not optimized: the scoped views' filters are still where the views put them
    new PlanWalk(this, scope).visit(out.plans ?? [], NO_GUARD);
  }

  /** One scan of the bound plan: a view's base table, the views' archive scan, or a generator. */
  checkScan(n: Node): void {
    const name = lower(n.name);
    const data = isObject(n.function_data) ? n.function_data : {};
    if (name === "seq_scan") {
      const table = lower(data.table);
      const ok =
        (lower(data.catalog) === this.database.toLowerCase() && lower(data.schema) === "main" && VIEW_BASE_TABLES.has(table)) ||
        (lower(data.catalog) === SCOPE_TAGS.catalog && table === SCOPE_TAGS.table);
      if (ok) return;
      throw new QueryRefused(`the query would read the table '${table}', which no documented view reads`);
    }
    if (name === "read_parquet") {
      const file = isObject(data.parquet_options) && isObject(data.parquet_options.file_options) ? data.parquet_options.file_options : {};
      if (file.filename === true && file.filename_column === ARCHIVE_SCAN_MARKER) return;
      // the files are not named: a glob the query made up would list what exists
      throw new QueryRefused(`the query would read Parquet files other than through the views frames_all/data_all`);
    }
    if (ALLOWED_TABLE_FUNCTIONS.has(name)) return;
    throw new QueryRefused(`the query would call ${name}, which is not allowed (files, settings and the catalog are out of reach)`);
  }

  /** Whether a scan reads the log's raw rows or the catalog (data of some tenant), as opposed to meta or the scope's list. */
  isTenantData(n: Node): boolean {
    const name = lower(n.name);
    const data = isObject(n.function_data) ? n.function_data : {};
    return name === "read_parquet" || (name === "seq_scan" && lower(data.catalog) === this.database.toLowerCase() && ["log", "tag_catalog"].includes(lower(data.table)));
  }

  /** Whether a plan subtree is the scope filter's list for `kind`: the tenant's catalog tags, or the connection's tag list. */
  isScopeList(n: unknown, kind: "tenant" | "tags", scope: ReadScope): boolean {
    const text = JSON.stringify(n);
    // one scan under plain equality: the views' `SELECT tag FROM <list> [WHERE tenant = '<tenant>']`
    if ((text.match(/"LOGICAL_GET"/g) ?? []).length !== 1 || /CONJUNCTION|COMPARE_(?!EQUAL")|LOGICAL_(?!GET|PROJECTION|FILTER)/.test(text)) return false;
    if (kind === "tags") return text.includes(`"catalog":"${SCOPE_TAGS.catalog}"`) && text.includes(`"table":"${SCOPE_TAGS.table}"`);
    return text.includes(`"table":"tag_catalog"`) && scope.tenant !== null && text.includes(`"value":${JSON.stringify(scope.tenant)}`);
  }
}
