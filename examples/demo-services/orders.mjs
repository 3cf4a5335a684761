// The demo's orders service: builds an order by calling the catalog service through its own
// sidecar (east-west), naming the target in the Host header. It forwards the trace headers it
// received, as any app in a mesh does, so the whole call tree shares one trace and request id.
import http from 'node:http';

const port = Number(process.env.PORT ?? 3003);
const instance = process.env.INSTANCE ?? `orders-${process.pid}`;
const outbound = Number(process.env.MESH_OUTBOUND_PORT ?? 4140);
const agent = new http.Agent({ keepAlive: true });

function send(res, status, body) {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), 'x-served-by': instance });
  res.end(json);
}

function callCatalog(path, incoming) {
  return new Promise((resolve, reject) => {
    const headers = { host: 'catalog', accept: 'application/json' };
    for (const h of ['x-request-id', 'traceparent', 'tracestate']) if (incoming.headers[h]) headers[h] = incoming.headers[h];
    const req = http.request({ host: '127.0.0.1', port: outbound, path, headers, agent, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(body) });
        } catch {
          reject(new Error(`catalog answered ${res.statusCode} with a non-JSON body`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('catalog timed out')));
    req.on('error', reject);
    req.end();
  });
}

const server = http.createServer(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  const m = /^\/orders\/(\d+)$/.exec(path);
  if (req.method === 'GET' && m) {
    const id = Number(m[1]);
    try {
      const catalog = await callCatalog('/items', req);
      if (catalog.status !== 200) return send(res, 502, { instance, error: 'catalog failed', catalog: catalog.body });
      const all = catalog.body.items;
      const lines = [all[id % all.length], all[(id + 1) % all.length]].map((item, i) => ({ item, quantity: i + 1 }));
      const total = lines.reduce((sum, l) => sum + l.item.price * l.quantity, 0);
      return send(res, 200, { instance, order: { id, lines, total }, catalogInstance: catalog.body.instance });
    } catch (err) {
      return send(res, 502, { instance, error: `catalog unreachable: ${err.message}` });
    }
  }
  if (path === '/health') return send(res, 200, { instance, ok: true });
  send(res, 404, { instance, error: `no such path ${path}` });
});

server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ service: 'orders', instance, listening: port })));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
