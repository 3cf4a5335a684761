export declare const ROOT: string;
export declare function buildIsFresh(): boolean;
export declare function load(rel: string): Promise<Record<string, unknown>>;
