// GET /api/docs: the browsable page over /api/openapi.json. The rich viewer (Scalar) loads its script
// from a CDN, which a plant network often cannot reach; so the page is first a plain list of every
// operation rendered here from the document (method, path, summary, parameters, body, answers), and the
// viewer replaces it only once its script has loaded.
import { Elysia } from "elysia";

/** Pinned: a script from a CDN runs with the gateway's origin, so it is not "latest". */
const SCALAR = "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.min.js";

const METHODS = ["get", "put", "post", "delete", "patch"] as const;

const esc = (s: unknown) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

type Doc = { info?: { title?: string; description?: string }; paths?: Record<string, Record<string, Operation>> };
type Operation = {
  summary?: string;
  description?: string;
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: { description?: string } }[];
  requestBody?: { content?: Record<string, unknown> };
  responses?: Record<string, { description?: string }>;
};

function operationHtml(method: string, path: string, op: Operation): string {
  const params = (op.parameters ?? []).map((p) => `<li><code>${esc(p.name)}</code> (${esc(p.in)}${p.required ? ", required" : ""}) ${esc(p.description)}</li>`);
  const body = op.requestBody?.content ? `<p>Body: ${Object.keys(op.requestBody.content).map((t) => `<code>${esc(t)}</code>`).join(", ")}</p>` : "";
  const answers = Object.entries(op.responses ?? {}).map(([s, r]) => `<li><b>${esc(s)}</b> ${esc(r.description)}</li>`);
  return `<section><h3><code>${method.toUpperCase()} ${esc(path)}</code></h3><p>${esc(op.summary)}</p>${op.description ? `<p>${esc(op.description)}</p>` : ""}
${params.length ? `<p>Parameters:</p><ul>${params.join("")}</ul>` : ""}${body}${answers.length ? `<p>Answers:</p><ul>${answers.join("")}</ul>` : ""}</section>`;
}

/** The page: the operation list, then the viewer's script, which removes the list when it loads. */
export function docsHtml(doc: Doc, specPath: string): string {
  const ops = Object.entries(doc.paths ?? {}).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => operationHtml(m, path, item[m]!)));
  const title = esc(doc.info?.title ?? "API");
  return `<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:0}#offline{max-width:60em;margin:2em auto;padding:0 1em}code{background:#f2f2f2;padding:0 .2em}section{border-top:1px solid #ddd}</style></head>
<body>
<div id="offline"><h1>${title}</h1><p>${esc(doc.info?.description)}</p>
<p>The document: <a href="${esc(specPath)}">${esc(specPath)}</a> (load it into any OpenAPI viewer). This list is shown while the interactive viewer cannot be loaded.</p>
${ops.join("\n")}</div>
<script id="api-reference" data-configuration='${esc(JSON.stringify({ url: specPath }))}'></script>
<script src="${SCALAR}" crossorigin onload="document.getElementById('offline').remove()"></script>
</body></html>`;
}

/** GET `path`: the page, rendered once from the document that `document()` gives (routes do not change after start). */
export function docsPage(path: string, specPath: string, document: () => Promise<Doc>) {
  let html: Promise<string> | null = null;
  return new Elysia({ name: "docs-page" }).get(
    path,
    async () => {
      html ??= document().then((doc) => docsHtml(doc, specPath)).catch((e) => ((html = null), Promise.reject(e)));
      return new Response(await html, { headers: { "content-type": "text/html; charset=utf-8" } });
    },
    { detail: { hide: true } },
  );
}
