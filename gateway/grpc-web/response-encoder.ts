import type { GrpcWebMode } from './content-type.ts';
export class GrpcWebResponseEncoder { constructor(_m: GrpcWebMode) {} data(c: Buffer): Buffer { return c; } end(_t: Record<string, unknown>): Buffer { return Buffer.alloc(0); } }
