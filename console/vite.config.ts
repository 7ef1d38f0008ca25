// The console's build: SvelteKit 3 takes its whole config here, in the sveltekit({...}) plugin (a
// svelte.config.js would stop the build). adapter-static writes a prerendered shell per page and the SPA
// fallback 200.html into build/, with .gz and .br copies that server/console-static.ts serves as they are.
// Build with `bun --bun vite build` (under Node 20 prerendering fails on Promise.withResolvers), or let
// console/build.mjs do it when the sources changed (npm start / npm test run it).
import adapter from "@sveltejs/adapter-static";
import { sveltekit } from "@sveltejs/kit/vite";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [
    sveltekit({
      adapter: adapter({ pages: "build", assets: "build", fallback: "200.html", precompress: true }),
    }),
  ],
  // the gateway serves the API beside the console: `vite dev` proxies it to a running gateway
  server: { proxy: { "/api": { target: process.env.EDGE_URL ?? "http://127.0.0.1:8080", ws: true } } },
});
