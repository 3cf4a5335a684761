// The fixed, cheap upstream every target proxies to: ~100-byte JSON, keep-alive.
import http from 'node:http';

const body = Buffer.from(JSON.stringify({ ok: true, service: 'bench', message: 'hello from the benchmark upstream, 100 bytes-ish' }));
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
