// Browser tests of the console: a gateway on the demo plant (in this process, free ports, a temp dir),
// the console built if its sources changed (console/build.mjs), and Debian's chromium driven by
// playwright-core. One browser per test file (a launch costs seconds on two cores); a fresh context per
// page, logged in with the demo user of a role. Every page's browser console is watched: an error there
// fails the test (checkConsole), unless the test said it expects it. Screenshots go to
// test-output/console/<file>/<name>.png.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { ensureConsoleBuilt } from "../../console/build.mjs";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort } from "../helpers/index.ts";

export const CHROMIUM = "/usr/bin/chromium";
const ROOT = join(import.meta.dir, "..", "..");
const DEMO = join(ROOT, "server", "demo", "config");

export type Role = "viewer" | "operator" | "admin";
/** The demo config's users (server/demo/config/gateway.yml): the password is the role's name. */
export const DEMO_PASSWORD: Record<Role, string> = { viewer: "viewer", operator: "operator", admin: "admin" };

export interface HarnessOptions {
  /** config files replacing the demo's (YAML text); gateway.yml is appended to the harness's own */
  files?: Record<string, string>;
  /** screenshots folder name (default: the test file's name) */
  name?: string;
}

export interface ConsoleHarness {
  g: TestGateway;
  browser: Browser;
  /** a new page at 1280x800 (or `viewport`), logged in as `role` (null: not logged in), at `path` */
  open(role: Role | null, path?: string, viewport?: { width: number; height: number }): Promise<Page>;
  /**
   * The file's one page logged in as `role` (made, and logged in through the dialog, on first use): tests
   * move it with go() instead of opening a page and logging in again (seconds each on two cores).
   */
  as(role: Role): Promise<Page>;
  /** client-side navigation to `path` (as a click on a link: the in-memory session stays) */
  go(page: Page, path: string): Promise<void>;
  /** logs in through the dialog over the current page */
  login(page: Page, role: Role): Promise<void>;
  /** saves a screenshot (the whole page unless `fullPage: false`); returns its path */
  shot(page: Page, name: string, opts?: { fullPage?: boolean }): Promise<string>;
  /** lets console errors matching `re` pass on this page (e.g. the 403 a refused write logs) */
  allowErrors(page: Page, re: RegExp): void;
  /** throws with every unexpected browser-console error of the pages opened so far, and forgets them */
  checkConsole(): void;
  close(): Promise<void>;
}

/** The demo config with its ports moved to free ones. */
async function demoFiles(extra: Record<string, string>): Promise<Record<string, string>> {
  const plc = await freePort();
  const demoGateway = readFileSync(join(DEMO, "gateway.yml"), "utf8");
  const consoleSection = demoGateway.slice(demoGateway.indexOf("\nconsole:") + 1);
  const files: Record<string, string> = {
    "gateway.yml": `gatewayId: demo\ndemo: { enabled: true, port: ${plc} }\n${consoleSection}\n${extra["gateway.yml"] ?? ""}`,
    "endpoints.yml": readFileSync(join(DEMO, "endpoints.yml"), "utf8").replace("${EDGE_DEMO_PLC_PORT:-5021}", String(plc)),
    "drivers.yml": readFileSync(join(DEMO, "drivers.yml"), "utf8"),
    "variables.yml": readFileSync(join(DEMO, "variables.yml"), "utf8"),
  };
  for (const [name, text] of Object.entries(extra)) if (name !== "gateway.yml") files[name] = text;
  return files;
}

export async function startConsoleHarness(testFile: string, opts: HarnessOptions = {}): Promise<ConsoleHarness> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Debian's chromium is missing (${CHROMIUM}): install it with \`apt-get install --no-install-recommends chromium\` (npm test installs it)`);
  }
  ensureConsoleBuilt({ log: () => undefined });
  const g = await startGateway(await demoFiles(opts.files ?? {}));
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  } catch (e) {
    await g.stop();
    throw e;
  }
  const outDir = join(ROOT, "test-output", "console", opts.name ?? basename(testFile).replace(/\.test\.ts$/, ""));
  mkdirSync(outDir, { recursive: true });
  const errors: string[] = [];
  const allowed = new WeakMap<Page, RegExp[]>();
  const byRole = new Map<Role, Promise<Page>>();

  const h: ConsoleHarness = {
    g,
    browser,
    async open(role, path = "/", viewport = { width: 1280, height: 800 }) {
      const context = await browser.newContext({ viewport });
      const page = await context.newPage();
      const record = (text: string) => {
        if (!(allowed.get(page) ?? []).some((re) => re.test(text))) errors.push(`${page.url()}: ${text}`);
      };
      page.on("console", (m) => m.type() === "error" && record(m.text()));
      page.on("pageerror", (e) => record(`uncaught: ${e.message}`));
      await page.goto(g.url + path);
      if (role) await h.login(page, role);
      return page;
    },
    as(role) {
      let p = byRole.get(role);
      if (!p) byRole.set(role, (p = h.open(role, "/")));
      return p;
    },
    async go(page, path) {
      // SvelteKit routes a click on a same-origin link without reloading the document
      await page.evaluate((to) => {
        const a = document.createElement("a");
        a.href = to;
        document.body.append(a);
        a.click();
        a.remove();
      }, path);
      await page.waitForURL((u) => u.pathname === path);
    },
    async login(page, role) {
      const dialog = page.getByRole("dialog");
      await dialog.waitFor();
      await dialog.locator("input[name=user]").fill(role);
      await dialog.locator("input[name=password]").fill(DEMO_PASSWORD[role]);
      await dialog.getByRole("button", { name: "Log in" }).click();
      await page.getByTestId("who").filter({ hasText: role }).waitFor();
    },
    async shot(page, name, opts = {}) {
      const file = join(outDir, `${name}.png`);
      await page.screenshot({ path: file, fullPage: opts.fullPage ?? true });
      return file;
    },
    allowErrors(page, re) {
      allowed.set(page, [...(allowed.get(page) ?? []), re]);
    },
    checkConsole() {
      const found = errors.splice(0);
      if (found.length) throw new Error(`errors in the browser console:\n  ${found.join("\n  ")}`);
    },
    async close() {
      await browser.close().catch(() => undefined);
      await g.stop();
    },
  };
  return h;
}
