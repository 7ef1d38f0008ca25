// Every page is a prerendered shell that renders in the browser: the data comes from the gateway's API at
// run time (with the user's token), never at build time.
export const prerender = true;
export const ssr = false;
