// What the proxy needs to know about gRPC on the wire (PROTOCOL-HTTP2.md, PROTOCOL-WEB.md): which
// requests are gRPC, how a status travels, and how an HTTP status maps to a gRPC one.

/** A request's gRPC flavour, read once from its content-type. */
export const GrpcKind = {
  None: 0,
  Grpc: 1,
  /** application/grpc-web(+proto): binary frames, trailers in the body. */
  Web: 2,
  /** application/grpc-web-text(+proto): the same, base64-encoded. */
  WebText: 3,
} as const;
export type GrpcKind = (typeof GrpcKind)[keyof typeof GrpcKind];

/** application/grpc, application/grpc+proto, application/grpc-web…, case-insensitively; parameters ignored. */
export function grpcKindOf(contentType: string): GrpcKind {
  if (contentType.length < 16) return GrpcKind.None;
  const ct = contentType.charCodeAt(0) === 97 /* a */ ? contentType : contentType.toLowerCase();
  if (!ct.startsWith('application/grpc')) return GrpcKind.None;
  const next = ct.charCodeAt(16);
  // end, '+' (a codec suffix) or ';' (parameters)
  if (Number.isNaN(next) || next === 43 || next === 59) return GrpcKind.Grpc;
  if (!ct.startsWith('-web', 16)) return GrpcKind.None;
  if (ct.startsWith('-text', 20)) {
    const after = ct.charCodeAt(25);
    return Number.isNaN(after) || after === 43 || after === 59 ? GrpcKind.WebText : GrpcKind.None;
  }
  const after = ct.charCodeAt(20);
  return Number.isNaN(after) || after === 43 || after === 59 ? GrpcKind.Web : GrpcKind.None;
}

/** The gRPC status names, for metrics labels and logs. */
export const GRPC_STATUS_NAMES: readonly string[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

/** The gRPC spec's mapping of an HTTP status a proxy answered with (http-grpc-status-mapping.md). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/** grpc-message is percent-encoded UTF-8: bytes outside printable ASCII, and '%', are escaped. */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** The service and method of a gRPC path (/package.Service/Method), or undefined when it is not one. */
export function grpcMethodOf(path: string): { service: string; method: string } | undefined {
  const slash = path.indexOf('/', 1);
  if (path.charCodeAt(0) !== 47 || slash < 2 || slash === path.length - 1) return undefined;
  const q = path.indexOf('?');
  const end = q < 0 ? path.length : q;
  if (path.indexOf('/', slash + 1) >= 0 && path.indexOf('/', slash + 1) < end) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1, end) };
}
