// The HTTP/1.1 wire pieces of the upstream client (h1-pool.ts): the request head, written once as
// one latin1 string, and Node's own llhttp binding for responses. The binding is the parser Node's
// http client and server run on (`_http_common`, present in every Node release since 0.x): C++
// llhttp handing the head over as one array of strings, where undici runs llhttp compiled to wasm
// and copies every header into Buffers. Nothing here allocates per header beyond the head string.
import { createRequire } from 'node:module';
import { TransportError } from './transport-error.ts';

/** Node's HTTPParser as `_http_common` exports it (the subset used). */
export interface NodeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [callback: number]: unknown;
}
interface ParserClass {
  new (): NodeHttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
}

const common = createRequire(import.meta.url)('_http_common') as { HTTPParser?: ParserClass; methods?: string[] };
export const HTTPParser = loadParser();
/**
 * Request methods by llhttp's number, as the parser reports them. The binding lists HTTP's methods
 * in llhttp's order, DELETE 0 to SOURCE 33 without a gap; QUERY, added later, is llhttp's 46.
 */
export const HTTP_METHODS: readonly (string | undefined)[] = methodTable(common.methods ?? []);

function methodTable(names: readonly string[]): (string | undefined)[] {
  const table: (string | undefined)[] = names.slice(0, 34);
  if (names.includes('QUERY')) table[46] = 'QUERY';
  return table;
}

function loadParser(): ParserClass {
  const p = common.HTTPParser;
  if (typeof p !== 'function') throw new Error(`this Node.js (${process.version}) does not export the HTTP parser meshgate's HTTP/1.1 client and server use (_http_common.HTTPParser)`);
  if (common.methods?.[1] !== 'GET' || common.methods?.[33] !== 'SOURCE') throw new Error(`this Node.js (${process.version}) lists HTTP methods in an order meshgate's HTTP/1.1 server does not know`);
  return p;
}

/** The parser's callbacks, module-level functions called with `this` bound to the parser. */
export interface ParserEvents {
  begin(this: NodeHttpParser): void;
  headers(this: NodeHttpParser, list: string[], url: string): void;
  headersComplete(this: NodeHttpParser, ...args: never[]): number;
  body(this: NodeHttpParser, chunk: Buffer): void;
  complete(this: NodeHttpParser): void;
}

/** A parser for requests (`HTTPParser.REQUEST`) or responses, its callbacks set. */
export function createParser(type: number, events: ParserEvents): NodeHttpParser {
  const p = new HTTPParser();
  p.initialize(type, {}, MAX_HEADER_SIZE, 0);
  p[HTTPParser.kOnMessageBegin] = events.begin;
  p[HTTPParser.kOnHeaders] = events.headers;
  p[HTTPParser.kOnHeadersComplete] = events.headersComplete;
  p[HTTPParser.kOnBody] = events.body;
  p[HTTPParser.kOnMessageComplete] = events.complete;
  return p;
}

/** The largest response head accepted (Node's and undici's default). */
export const MAX_HEADER_SIZE = 16384;

/** Codes for what this client detects itself (classify.ts maps the UND_ERR_ ones as undici's). */
export const H1_INVALID_REQUEST = 'UND_ERR_INVALID_ARG';
export const H1_SOCKET = 'UND_ERR_SOCKET';
export const H1_HEADERS_TIMEOUT = 'UND_ERR_HEADERS_TIMEOUT';
export const H1_BODY_TIMEOUT = 'UND_ERR_BODY_TIMEOUT';
export const H1_ABORTED = 'UND_ERR_ABORTED';
export const H1_CLOSED = 'UND_ERR_CLOSED';
export const H1_LENGTH_MISMATCH = 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH';

// RFC 9110 §5.1 token, §5.5 field value (obs-text allowed, as Node's server accepts it); a path is
// any visible character (no space, CR, LF or NUL can reach the wire and split the request).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_PATH = /[^\x21-\xff]/;
/** Methods whose requests carry a body: an empty one is sent as Content-Length: 0 (as undici does). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** The request head, or an TransportError for a request that must not be sent. */
export interface RequestHead {
  /** The head up to, not including, the blank line. */
  text: string;
  /** Content-Length as given in the headers, or -1. */
  contentLength: number;
}

/**
 * `headers` is the proxy's flat [name, value, …] list. A Host is added when absent; framing
 * (Content-Length or chunked) is the caller's to append.
 */
export function requestHead(method: string, path: string, headers: readonly string[], defaultHost: string): RequestHead | TransportError {
  if (!TOKEN.test(method)) return new TransportError(H1_INVALID_REQUEST, `invalid request method ${JSON.stringify(method)}`);
  if (INVALID_PATH.test(path)) return new TransportError(H1_INVALID_REQUEST, 'the request target has characters that cannot be sent');
  let text = `${method} ${path} HTTP/1.1\r\n`;
  let hosts = 0;
  let contentLength = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    if (!TOKEN.test(name)) return new TransportError(H1_INVALID_REQUEST, `invalid header name ${JSON.stringify(name)}`);
    if (INVALID_VALUE.test(value)) return new TransportError(H1_INVALID_REQUEST, `header ${name} has characters that cannot be sent`);
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    else if (name.length === 14 && name.toLowerCase() === 'content-length') {
      if (contentLength >= 0 || !/^\d{1,15}$/.test(value)) return new TransportError(H1_INVALID_REQUEST, 'invalid or repeated content-length');
      contentLength = Number(value);
    }
    text += `${name}: ${value}\r\n`;
  }
  if (hosts > 1) return new TransportError(H1_INVALID_REQUEST, 'more than one host header');
  if (hosts === 0) text += `host: ${defaultHost}\r\n`;
  return { text, contentLength };
}

export function expectsBody(method: string): boolean {
  return BODY_METHODS.has(method);
}

/** `keep-alive: timeout=N` from a response head (seconds), or -1. */
export function keepAliveHint(raw: readonly string[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'keep-alive') {
      const m = KEEP_ALIVE_TIMEOUT.exec(raw[i + 1]);
      if (m !== null) return Number(m[1]);
    }
  }
  return -1;
}
const KEEP_ALIVE_TIMEOUT = /timeout\s*=\s*(\d+)/i;
