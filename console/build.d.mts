// Types of build.mjs for the TypeScript callers (the test harness and the console benchmark).
export declare const BUILD_DIR: string;
export declare function sourceHash(): string;
export declare function isBuildCurrent(): boolean;
export declare function ensureConsoleBuilt(opts?: { bun?: string; force?: boolean; log?: (line: string) => void }): "current" | "built";
