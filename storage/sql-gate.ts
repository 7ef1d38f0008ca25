// The statement check of user SQL (first wall of the SQL sandbox, see storage/README.md "SQL sandbox"):
// DuckDB parses the query (json_serialize_sql) and this file walks the tree resolving every relation
// name the way DuckDB's binder does, scope by scope. A name is accepted only when it resolves to a CTE
// visible at that point or to one of the documented views; anything else (a file path, a system view,
// a qualified name) would be resolved by DuckDB as a catalog entry or a replacement scan (a file read)
// and is refused. Functions are checked against an allow-list taken from the running instance.
// Then the second layer (storage/sql-plan.ts) checks DuckDB's own plan of the query.
import type { DuckDBConnection } from "@duckdb/node-api";
import { QueryRefused } from "./errors.ts";
import { ALLOWED_TABLE_FUNCTIONS, isObject, list, lower, PlanCheck, type Node } from "./sql-plan.ts";
import { QUERY_VIEWS, SCOPE_TAGS, type ReadScope } from "./views.ts";

/** Table references that name no data by themselves (their children are walked). */
const PLAIN_REF_TYPES = new Set(["JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY", "PIVOT"]);

/** Expression classes with no name of their own to resolve (their children are walked). */
const PLAIN_EXPR_CLASSES = new Set([
  "CONSTANT", "COLUMN_REF", "OPERATOR", "COMPARISON", "CONJUNCTION", "CASE", "CAST", "SUBQUERY", "STAR",
  "LAMBDA", "LAMBDA_REF", "COLLATE", "BETWEEN", "POSITIONAL_REFERENCE", "PARAMETER",
]);

/**
 * Function families that reveal settings, paths, the catalog, the session or the host, or run SQL
 * given as a string (json_serialize_plan binds the text it is given: a way around this walk).
 */
const DENIED_FUNCTION = new RegExp(
  "^(" +
    [
      "duckdb_.*", "pragma_.*", "pg_.*", "has_.*_privilege", "current_(?!date$|localtime$|localtimestamp$).*",
      "getvariable", "getenv", "version", "get_block_size", "in_search_path", "user", "session_user",
      "(col|obj|shobj)_description", "format_(pg_)?type", "map_to_pg_oid", "inet_.*", "txid_.*", "stats",
      "nextval", "currval", "setseed", "json_(de)?serialize_.*", "json_execute_serialized_sql",
      "read_.*", "glob", "parquet_.*", "sqlite_.*", ".*secret.*", ".*file.*", ".*extension.*", "query(_table)?",
      "which_.*", "enable_.*", "disable_.*", "checkpoint", "force_checkpoint", "load", "install",
    ].join("|") +
    ")$",
);

/** A macro is SQL: one whose body names a denied family (or any table) is denied with it. */
const DENIED_MACRO_BODY = /duckdb_|pg_|current_|getvariable|\bFROM\b|setting/i;

/** Window functions proper (not aggregates over a window): fixed by the grammar, no name resolution. */
const WINDOW_FUNCTIONS = ["row_number", "rank", "rank_dense", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value", "fill"];


/** What a name means at one point of the tree: the CTE names visible there (lowercase). */
type Scope = ReadonlySet<string>;


export class SqlGate {
  private readonly views: ReadonlySet<string> = new Set(QUERY_VIEWS);

  /**
   * `functions`: the scalar/aggregate names a query may call; `internal`: names of the tables and views
   * behind the documented views, which no CTE may take (lowercase). Views are bound in their own scope,
   * but a CTE named `tag_catalog` or `reader_tags` leaking into one would forge a reader's scope: refusing
   * the name costs nothing and does not depend on DuckDB getting that right.
   */
  constructor(
    private readonly functions: ReadonlySet<string>,
    private readonly internal: ReadonlySet<string> = new Set(),
    /** the second layer; its database is the log's catalog name (current_database()) */
    private readonly plan = new PlanCheck("log"),
  ) {}

  /**
   * The allow-list of functions from the running instance: every built-in scalar, aggregate and macro
   * (so a DuckDB upgrade brings its new pure functions), minus the denied families. Built once at start.
   */
  static async fromInstance(conn: DuckDBConnection): Promise<SqlGate> {
    const r = await conn.runAndReadAll(
      `SELECT DISTINCT function_name, function_type, coalesce(macro_definition, '') FROM duckdb_functions()
       WHERE internal AND function_type IN ('scalar', 'aggregate', 'macro')`,
    );
    const names = new Set<string>(WINDOW_FUNCTIONS);
    const denied = new Set<string>();
    for (const [name, type, body] of r.getRows()) {
      const n = lower(name);
      if (DENIED_FUNCTION.test(n) || (type === "macro" && DENIED_MACRO_BODY.test(String(body)))) denied.add(n);
      else names.add(n);
    }
    // an overload that is a denied macro denies the name
    for (const n of denied) names.delete(n);
    for (const n of ALLOWED_TABLE_FUNCTIONS) names.add(n);
    const t = await conn.runAndReadAll(
      `SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views() WHERE NOT internal`,
    );
    const internal = new Set(t.getRows().map((x) => lower(x[0])));
    for (const v of QUERY_VIEWS) internal.delete(v);
    // only in the temp catalog of scoped connections, so not listed above
    internal.add(SCOPE_TAGS.table);
    const db = await conn.runAndReadAll(`SELECT current_database()`);
    return new SqlGate(names, internal, new PlanCheck(String(db.getRows()[0]![0])));
  }

  /**
   * Parses `sql` on `conn` and checks its tree, then DuckDB's plan of it. `scope`: the reader's scope the
   * connection's temp views were made for (every raw-row scan must sit under its filter). Throws
   * QueryRefused with the reason.
   */
  async check(conn: DuckDBConnection, sql: string, scope: ReadScope = { tenant: null, tags: null }): Promise<void> {
    const r = await conn.runAndReadAll(`SELECT json_serialize_sql($1::VARCHAR)`, [sql]);
    const out = JSON.parse(String(r.getRows()[0]![0])) as { error: boolean; error_message?: string; statements?: unknown[] };
    if (out.error) {
      // json_serialize_sql only serializes SELECTs: SET, COPY, PRAGMA, SHOW ... land here
      throw new QueryRefused(`only a plain SELECT is accepted (${out.error_message ?? "not a SELECT"})`);
    }
    this.checkTree(out.statements ?? []);
    await this.plan.check(conn, sql, scope);
  }

  /** Checks parsed statements (json_serialize_sql's `statements`). Throws QueryRefused. */
  checkTree(statements: unknown[]): void {
    for (const s of statements) this.walk(s, new Set());
  }

  /** Any node: query nodes open a scope, table refs and functions are resolved, the rest is walked. */
  private walk(n: unknown, scope: Scope): void {
    if (Array.isArray(n)) return n.forEach((x) => this.walk(x, scope));
    if (!isObject(n)) return;
    if (isObject(n.cte_map) && typeof n.type === "string") return this.queryNode(n, scope);
    if (typeof n.class === "string") return this.expression(n, scope);
    if ("sample" in n && "alias" in n && typeof n.type === "string") return this.tableRef(n, scope);
    for (const v of Object.values(n)) this.walk(v, scope);
  }

  /**
   * A query node with its WITH: CTE i sees the outer scope and CTEs 0..i-1 (and itself when DuckDB made
   * it recursive), never later ones; the node's body sees them all. Outside the node none is visible.
   */
  private queryNode(n: Node, outer: Scope): void {
    const entries = list((n.cte_map as Node).map) as { key: unknown; value: Node }[];
    const inner = new Set(outer);
    for (const e of entries) {
      const name = lower(e.key);
      if (this.internal.has(name)) throw new QueryRefused(`a CTE may not be named '${name}' (an internal table)`);
      const query = isObject(e.value) ? e.value.query : undefined;
      const recursive = isObject(query) && isObject(query.node) && query.node.type === "RECURSIVE_CTE_NODE";
      const own = new Set(inner);
      if (recursive) own.add(name);
      this.walk(e.value, own);
      inner.add(name);
    }
    for (const [k, v] of Object.entries(n)) if (k !== "cte_map") this.walk(v, inner);
  }

  private tableRef(n: Node, scope: Scope): void {
    const type = String(n.type);
    if (type === "BASE_TABLE") return this.relationName(n, scope);
    if (type === "TABLE_FUNCTION") {
      const f = isObject(n.function) ? n.function : {};
      const name = lower(f.function_name);
      if (f.schema || f.catalog || !ALLOWED_TABLE_FUNCTIONS.has(name)) {
        throw new QueryRefused(`table function ${name}() is not allowed; only ${[...ALLOWED_TABLE_FUNCTIONS].join(", ")}`);
      }
      // the arguments are expressions (they may hold subqueries); the name itself is checked above
      this.walk(f.children, scope);
      for (const [k, v] of Object.entries(n)) if (k !== "function") this.walk(v, scope);
      return;
    }
    if (!PLAIN_REF_TYPES.has(type)) throw new QueryRefused(`${type} is not accepted in a query`);
    for (const v of Object.values(n)) this.walk(v, scope);
  }

  /** A table name: a visible CTE, else a documented view; DuckDB would resolve anything else elsewhere. */
  private relationName(n: Node, scope: Scope): void {
    const name = lower(n.table_name);
    if (n.schema_name || n.catalog_name) {
      throw new QueryRefused(`qualified names are not accepted (${[n.catalog_name, n.schema_name, n.table_name].filter(Boolean).join(".")}); use the views ${QUERY_VIEWS.join(", ")}`);
    }
    if (n.at_clause) throw new QueryRefused(`AT (time travel) is not accepted on '${name}'`);
    if (scope.has(name) || this.views.has(name)) return;
    throw new QueryRefused(`unknown table '${name}'; queries read the views ${QUERY_VIEWS.join(", ")} (or their own CTEs, where visible)`);
  }

  private expression(n: Node, scope: Scope): void {
    const cls = String(n.class);
    if (cls === "FUNCTION" || cls === "WINDOW") {
      const name = lower(n.function_name);
      // the parser itself qualifies some built-ins (a list literal is main.list_value); `main` of no
      // catalog or of `system` holds the built-ins, whose names are checked below
      const builtIn = (!n.schema || n.schema === "main") && (!n.catalog || n.catalog === "system");
      if (!builtIn) throw new QueryRefused(`qualified function names are not accepted (${name})`);
      if (!this.functions.has(name)) throw new QueryRefused(`function ${name}() is not allowed in a query`);
    } else if (!PLAIN_EXPR_CLASSES.has(cls)) {
      throw new QueryRefused(`${cls} expressions are not accepted in a query`);
    }
    for (const v of Object.values(n)) this.walk(v, scope);
  }
}
