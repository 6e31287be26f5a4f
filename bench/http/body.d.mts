// Types for body.mjs (plain JS so that run.mjs can import it without tsx).
export declare const BODY_BYTES: number;
export declare const BENCH_PATH: string;
export declare const BODY: Buffer;
export declare const BODY_OBJECT: Record<string, unknown>;
export declare const BODY_SHA256: string;
export declare const CONTENT_TYPE: string;
export declare function catalogFor(miss: string): Record<string, unknown>;
