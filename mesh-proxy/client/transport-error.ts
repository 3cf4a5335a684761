// A failure on the way to an upstream, carrying the code classify.ts sorts it by: undici-style
// UND_ERR_* from the HTTP/1.1 client, ERR_MESH_H2_* from the HTTP/2 one, ERR_MESH_PEER_IDENTITY and
// ERR_MESH_TLS_REQUIRED from the mTLS connector. Node's own socket errors carry their code already.
export class TransportError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
