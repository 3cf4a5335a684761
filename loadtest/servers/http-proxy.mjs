// Peer: node-http-proxy on node:http with a keep-alive agent.
import http from 'node:http';
import httpProxy from 'http-proxy';

const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${process.env.UPSTREAM_PORT}`, agent });
proxy.on('error', (_err, _req, res) => {
  res.writeHead?.(502);
  res.end?.();
});
http.createServer((req, res) => proxy.web(req, res)).listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
