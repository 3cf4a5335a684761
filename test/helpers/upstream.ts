// A small real HTTP app for tests: answers with what it received and counts requests.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface TestApp {
  readonly name: string;
  readonly port: number;
  readonly received: Received[];
  /** Set to change how the next requests are answered. */
  handler: ((req: http.IncomingMessage, res: http.ServerResponse, body: string) => void) | undefined;
  close(): Promise<void>;
}

export async function startApp(name: string, port = 0): Promise<TestApp> {
  const received: Received[] = [];
  const app: TestApp = {
    name,
    port: 0,
    received,
    handler: undefined,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (app.handler) return app.handler(req, res, body);
      const json = JSON.stringify({ app: name, method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json', 'x-app': name });
      res.end(json);
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  (app as { port: number }).port = (server.address() as AddressInfo).port;
  return app;
}
