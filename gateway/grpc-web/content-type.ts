export type GrpcWebMode = 'binary' | 'text';
export function upstreamContentType(ct: string): string { return ct; }
export function downstreamContentType(ct: string | undefined, _m: GrpcWebMode): string { return ct ?? ''; }
