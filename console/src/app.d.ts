// SvelteKit's ambient types for the console.
declare global {
  namespace App {}
}
export {};
