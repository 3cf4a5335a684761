// gRPC-Web input errors: each has a stable code, and a message saying what is wrong and where.
export type GrpcWebErrorCode = 'GRPC_WEB_BAD_BASE64' | 'GRPC_WEB_BAD_FRAME' | 'GRPC_WEB_MESSAGE_TOO_LARGE';

export class GrpcWebError extends Error {
  readonly code: GrpcWebErrorCode;

  constructor(code: GrpcWebErrorCode, message: string) {
    super(message);
    this.name = 'GrpcWebError';
    this.code = code;
  }
}
