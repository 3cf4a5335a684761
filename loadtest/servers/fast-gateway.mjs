// Peer: fast-gateway 3.4.7 (the newest that installs from the registry), default proxy.
import gateway from 'fast-gateway';

// prefix '' (not '/'): fast-gateway appends its '/*' pattern to the prefix, so '/' would not match '/bench'.
const server = gateway({ routes: [{ prefix: '', target: `http://127.0.0.1:${process.env.UPSTREAM_PORT}` }] });
await server.start(Number(process.env.PORT), '127.0.0.1');
process.send?.('ready');
