// The per-request context every plugin phase receives: one object per exchange whose route has a
// plugin chain (none otherwise). It reads and edits the exchange's flat upstream header list in
// place, so nothing is copied unless a plugin asks for it.
import type { Exchange, ExchangeHooks } from '../mesh-proxy/client/exchange.ts';
import type { LogContext, RequestContext, ResponseContext } from './api.ts';
import type { PluginChain } from './chain.ts';

/** What the router knows when it hands an exchange to the chain. */
export interface RequestInfo {
  readonly path: string;
  readonly query: string;
  readonly host: string;
  readonly identity: string | undefined;
}

// Outside the response phase there are no response headers to edit; frozen, so a misplaced
// setResponseHeader throws (and is reported) instead of leaking into every other request.
const NO_HEADERS = Object.freeze([]) as unknown as string[];

function indexOf(list: readonly string[], name: string): number {
  const n = name.length;
  for (let i = 0; i < list.length; i += 2) {
    const k = list[i];
    if (k.length === n && (k === name || k.toLowerCase() === name)) return i;
  }
  return -1;
}

export class PluginContext implements RequestContext, ResponseContext, LogContext, ExchangeHooks {
  readonly ex: Exchange;
  readonly chain: PluginChain;
  readonly path: string;
  readonly query: string;
  readonly host: string;
  readonly identity: string | undefined;
  claims: Readonly<Record<string, unknown>> | undefined;
  consumer: string | undefined;
  /** Response headers staged by onRequest handlers, flat. */
  staged: string[] | undefined;
  // Response phase
  status = 0;
  local = false;
  #response: string[] = NO_HEADERS;
  #locals: Map<string, unknown> | undefined;

  constructor(ex: Exchange, chain: PluginChain, info: RequestInfo) {
    this.ex = ex;
    this.chain = chain;
    this.path = info.path;
    this.query = info.query.charCodeAt(0) === 63 /* '?' */ ? info.query.slice(1) : info.query;
    this.host = info.host;
    this.identity = info.identity;
  }

  get method(): string {
    return this.ex.method;
  }
  get route(): string {
    return this.ex.route;
  }
  get service(): string {
    return this.ex.service;
  }
  get requestId(): string {
    return this.ex.requestId;
  }
  get clientIp(): string {
    return this.ex.req.socket?.remoteAddress ?? '';
  }
  get contentLength(): number {
    return this.ex.contentLength;
  }
  get hasBody(): boolean {
    return this.ex.hasBody;
  }
  get locals(): Map<string, unknown> {
    return (this.#locals ??= new Map());
  }
  get errorCode(): string | undefined {
    return this.ex.errorCode;
  }
  get durationMs(): number {
    return performance.now() - this.ex.startedAt;
  }

  header(name: string): string | undefined {
    const h = this.ex.headers;
    const i = indexOf(h, name.toLowerCase());
    return i < 0 ? undefined : h[i + 1];
  }

  setHeader(name: string, value: string): void {
    const lower = name.toLowerCase();
    const h = this.ex.headers;
    const i = indexOf(h, lower);
    if (i < 0) {
      h.push(lower, value);
      return;
    }
    h[i + 1] = value;
    this.#removeFrom(lower, i + 2);
  }

  removeHeader(name: string): void {
    this.#removeFrom(name.toLowerCase(), 0);
  }

  // Splicing shifts the slots where the deadline headers are stamped before each try.
  #removeFrom(lower: string, start: number): void {
    const ex = this.ex;
    const h = ex.headers;
    for (let i = start; i < h.length; ) {
      const k = h[i];
      if (k.length === lower.length && k.toLowerCase() === lower) {
        h.splice(i, 2);
        // The removed pair's own value slot first: it is also "> i".
        if (ex.timeoutSlot === i + 1) ex.timeoutSlot = -1;
        else if (ex.timeoutSlot > i) ex.timeoutSlot -= 2;
        if (ex.grpcTimeoutSlot === i + 1) ex.grpcTimeoutSlot = -1;
        else if (ex.grpcTimeoutSlot > i) ex.grpcTimeoutSlot -= 2;
      } else i += 2;
    }
  }

  get upstreamPath(): string {
    return this.ex.path;
  }

  setPath(pathWithQuery: string): void {
    this.ex.path = pathWithQuery;
  }

  setRequestId(id: string): void {
    this.ex.requestId = id;
    this.setHeader('x-request-id', id);
  }

  addResponseHeader(name: string, value: string): void {
    (this.staged ??= []).push(name, value);
  }

  limitBody(bytes: number): void {
    this.ex.limitBody(bytes);
  }

  responseHeader(name: string): string | undefined {
    const i = indexOf(this.#response, name.toLowerCase());
    return i < 0 ? undefined : this.#response[i + 1];
  }

  setResponseHeader(name: string, value: string): void {
    const lower = name.toLowerCase();
    const list = this.#response;
    const i = indexOf(list, lower);
    if (i < 0) {
      list.push(lower, value);
      return;
    }
    list[i + 1] = value;
    for (let j = i + 2; j < list.length; ) {
      if (list[j].toLowerCase() === lower) list.splice(j, 2);
      else j += 2;
    }
  }

  removeResponseHeader(name: string): void {
    const lower = name.toLowerCase();
    const list = this.#response;
    for (let j = 0; j < list.length; ) {
      if (list[j].toLowerCase() === lower) list.splice(j, 2);
      else j += 2;
    }
  }

  // ExchangeHooks: the exchange calls these; the chain runs the plugins' phases.
  onResponse(_ex: Exchange, status: number, headers: string[], local: boolean): void {
    if (this.staged !== undefined) for (let i = 0; i < this.staged.length; i++) headers.push(this.staged[i]);
    this.status = status;
    this.local = local;
    this.#response = headers;
    this.chain.runResponse(this);
    this.#response = NO_HEADERS;
  }

  onFinished(): void {
    this.status = this.ex.statusCode;
    this.chain.runLog(this);
  }
}
