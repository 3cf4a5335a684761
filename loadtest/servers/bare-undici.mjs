// Reference (not a product): the least a Node forwarder can do — node:http in, an undici Pool out,
// headers copied, body streamed. No routing, deadlines, balancing, breakers, metrics or logs. It is
// the calibration row: the ceiling any Node proxy on this machine can approach.
import http from 'node:http';
import { Pool } from 'undici';

const pool = new Pool(`http://127.0.0.1:${process.env.UPSTREAM_PORT}`, { connections: 128, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

http
  .createServer((req, res) => {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    pool.request({ method: req.method, path: req.url, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, (err, data) => {
      if (err) {
        res.statusCode = 502;
        res.end();
        return;
      }
      const out = {};
      for (const [k, v] of Object.entries(data.headers)) if (!HOP.has(k)) out[k] = v;
      res.writeHead(data.statusCode, out);
      data.body.pipe(res);
    });
  })
  .listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
