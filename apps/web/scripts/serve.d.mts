export declare const DIST: string;
export declare function serve(options?: { root?: string; port?: number; host?: string }): Promise<{ url: string; close: () => Promise<void> }>;
