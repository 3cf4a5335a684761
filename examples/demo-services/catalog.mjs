// The demo's catalog service: a plain Node HTTP server that knows nothing of meshgate.
import http from 'node:http';

const port = Number(process.env.PORT ?? 3001);
const instance = process.env.INSTANCE ?? `catalog-${process.pid}`;
const items = [
  { id: 1, name: 'espresso cup', price: 9.5 },
  { id: 2, name: 'pour-over kettle', price: 42 },
  { id: 3, name: 'burr grinder', price: 129 },
  { id: 4, name: 'paper filters (100)', price: 6.25 },
];

function send(res, status, body) {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), 'x-served-by': instance });
  res.end(json);
}

const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && (path === '/items' || path === '/')) return send(res, 200, { instance, items });
  const m = /^\/items\/(\d+)$/.exec(path);
  if (req.method === 'GET' && m) {
    const item = items.find((i) => i.id === Number(m[1]));
    return item ? send(res, 200, { instance, item }) : send(res, 404, { instance, error: `no item ${m[1]}` });
  }
  if (path === '/health') return send(res, 200, { instance, ok: true });
  send(res, 404, { instance, error: `no such path ${path}` });
});

server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ service: 'catalog', instance, listening: port })));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
