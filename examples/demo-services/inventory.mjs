// The demo's inventory service: a gRPC server (@grpc/grpc-js, h2c) that knows nothing of meshgate.
// Its sidecar has app.protocol h2c; the edge routes /demo.inventory.Inventory/* to it as gRPC and
// translates gRPC-Web from browsers.
import { fileURLToPath } from 'node:url';

let grpc;
let loader;
try {
  grpc = await import('@grpc/grpc-js');
  loader = await import('@grpc/proto-loader');
} catch {
  process.stderr.write('inventory: @grpc/grpc-js and @grpc/proto-loader are not installed (npm install, with dev dependencies)\n');
  process.exit(3);
}

const port = Number(process.env.PORT ?? 3004);
const instance = process.env.INSTANCE ?? `inventory-${process.pid}`;
const definition = loader.loadSync(fileURLToPath(new URL('./inventory.proto', import.meta.url)), { keepCase: true, defaults: true });
const pkg = grpc.loadPackageDefinition(definition);

const items = new Map(
  [
    { sku: 'cup-1', name: 'espresso cup', stock: 12 },
    { sku: 'kettle-1', name: 'pour-over kettle', stock: 3 },
    { sku: 'grinder-1', name: 'burr grinder', stock: 1 },
    { sku: 'filters-100', name: 'paper filters (100)', stock: 40 },
  ].map((i) => [i.sku, i]),
);

function notFound(sku) {
  const md = new grpc.Metadata();
  md.set('x-served-by', instance);
  return { code: grpc.status.NOT_FOUND, details: `no item with sku ${JSON.stringify(sku)}`, metadata: md };
}

function served() {
  const md = new grpc.Metadata();
  md.set('x-served-by', instance);
  return md;
}

const server = new grpc.Server();
server.addService(pkg.demo.inventory.Inventory.service, {
  GetItem(call, cb) {
    const item = items.get(call.request.sku);
    if (!item) return cb(notFound(call.request.sku));
    call.sendMetadata(served());
    cb(null, item);
  },
  ListItems(call) {
    call.sendMetadata(served());
    for (const item of items.values()) call.write(item);
    call.end();
  },
  Reserve(call, cb) {
    let reserved = 0;
    let rejected = 0;
    call.on('data', (r) => {
      const item = items.get(r.sku);
      if (item && r.quantity > 0 && item.stock >= r.quantity) {
        item.stock -= r.quantity;
        reserved += r.quantity;
      } else rejected += Math.max(0, r.quantity);
    });
    call.on('end', () => cb(null, { reserved, rejected }));
  },
  WatchStock(call) {
    call.sendMetadata(served());
    call.on('data', (r) => {
      const item = items.get(r.sku);
      call.write({ sku: r.sku, stock: item ? item.stock : -1 });
    });
    call.on('end', () => call.end());
  },
});

// grpc.health.v1.Health/Check, by hand (no extra package): SERVING for "" and our service.
const raw = (b) => b;
server.addService(
  {
    Check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
  },
  {
    Check(call, cb) {
      // HealthCheckRequest { string service = 1 }: the name, if any, after a tag and a one-byte length.
      const name = call.request.length > 2 ? call.request.subarray(2).toString('utf8') : '';
      if (name !== '' && name !== 'demo.inventory.Inventory') return cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${name}` });
      cb(null, Buffer.from([0x08, 0x01])); // status: SERVING
    },
  },
);

server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`inventory: cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
    process.exit(1);
  }
});

process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
process.on('SIGINT', () => server.tryShutdown(() => process.exit(0)));
