// The fixed, cheap upstream every target proxies to: ~100-byte JSON, keep-alive; DELAY_MS makes it slow.
import http from 'node:http';

const body = Buffer.from(JSON.stringify({ ok: true, service: 'bench', message: 'hello from the benchmark upstream, 100 bytes-ish' }));
const delayMs = Number(process.env.DELAY_MS ?? 0);
const headers = { 'content-type': 'application/json', 'content-length': body.length, 'x-upstream': process.env.PORT };
function reply(res) {
  res.writeHead(200, headers);
  res.end(body);
}
const server = http.createServer((req, res) => {
  req.resume();
  if (delayMs > 0) setTimeout(reply, delayMs, res);
  else reply(res);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
