// The content types of gRPC-Web (PROTOCOL-WEB.md): application/grpc-web[+codec] carries binary
// frames, application/grpc-web-text[+codec] the same base64-encoded; upstream it is gRPC,
// application/grpc[+codec].

export type GrpcWebMode = 'binary' | 'text';

const WEB = 'application/grpc-web';
const WEB_TEXT = 'application/grpc-web-text';
const GRPC = 'application/grpc';

/** The media type without parameters, lower-cased. */
function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** The codec suffix ("+proto", "+json"), or "" when there is none. */
function suffixAfter(type: string, base: string): string | undefined {
  if (type === base) return '';
  if (type.startsWith(base) && type.charCodeAt(base.length) === 43 /* + */) return type.slice(base.length);
  return undefined;
}

/** The gRPC-Web mode of a request's content-type, or undefined when it is not gRPC-Web. */
export function grpcWebMode(contentType: string | undefined): GrpcWebMode | undefined {
  if (contentType === undefined) return undefined;
  const type = mediaType(contentType);
  if (suffixAfter(type, WEB_TEXT) !== undefined) return 'text';
  if (suffixAfter(type, WEB) !== undefined) return 'binary';
  return undefined;
}

/** What to send upstream: grpc-web(+x) and grpc-web-text(+x) become application/grpc(+x). */
export function upstreamContentType(contentType: string): string {
  const type = mediaType(contentType);
  const suffix = suffixAfter(type, WEB_TEXT) ?? suffixAfter(type, WEB) ?? '';
  return GRPC + suffix;
}

/** What the browser gets: the upstream's application/grpc(+x) as grpc-web(+x) or grpc-web-text(+x). */
export function downstreamContentType(upstream: string | undefined, mode: GrpcWebMode): string {
  const base = mode === 'text' ? WEB_TEXT : WEB;
  if (upstream === undefined) return `${base}+proto`;
  const suffix = suffixAfter(mediaType(upstream), GRPC);
  return suffix === undefined ? `${base}+proto` : base + suffix;
}

/** application/grpc or application/grpc+codec (not gRPC-Web). */
export function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && suffixAfter(mediaType(contentType), GRPC) !== undefined;
}
