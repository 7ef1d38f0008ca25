// A tag's page exists for every tag name: rendered in the browser from the SPA fallback, never prerendered.
export const prerender = false;
