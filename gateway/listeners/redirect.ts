// listeners.http.redirectToHttps: plain-HTTP requests are answered 308 to the same host and path on
// the https listener (308, not 301: the method and body are kept, RFC 9110 §15.4.9). ACME HTTP-01
// challenges still reach their route, so certificates can be obtained over plain HTTP.
import type { Exchange } from '../../mesh-proxy/client/exchange.ts';
import { hostWithoutPort } from '../../mesh-proxy/http/host.ts';
import type { Router } from '../../mesh-proxy/http/proxy-listener.ts';

const ACME = '/.well-known/acme-challenge/';

export class RedirectRouter implements Router {
  readonly #inner: Router;
  readonly #portSuffix: string;

  constructor(inner: Router, httpsPort: number) {
    this.#inner = inner;
    this.#portSuffix = httpsPort === 443 ? '' : `:${httpsPort}`;
  }

  route(ex: Exchange): void {
    const url = ex.req.url ?? '/';
    if ((ex.req.socket as { encrypted?: boolean }).encrypted === true || url.startsWith(ACME)) {
      this.#inner.route(ex);
      return;
    }
    const host = hostWithoutPort(ex.host);
    if (host === '' || url.charCodeAt(0) !== 47 /* '/' */) {
      ex.fail('BAD_REQUEST', 'a redirect to https needs a Host header and a path');
      return;
    }
    const location = `https://${host.includes(':') ? `[${host}]` : host}${this.#portSuffix}${url}`;
    ex.reply(308, undefined, undefined, { location, 'content-type': 'text/plain; charset=utf-8' }, `Redirecting to ${location}\n`);
  }
}
