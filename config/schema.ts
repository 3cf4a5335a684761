// The single source of the configuration's shape: TypeBox builds the JSON Schema that ajv validates,
// and the TypeScript types come from the same declarations (fastify's approach).
import { Type, type Static } from '@sinclair/typebox';
import { DURATION_PATTERN } from './duration.ts';

const strict = { additionalProperties: false } as const;

/** An object whose nested defaults ajv fills in even when the key is absent from the file. */
function Section<T extends Parameters<typeof Type.Object>[0]>(props: T, description?: string) {
  return Type.Object(props, { ...strict, default: {}, ...(description ? { description } : {}) });
}

/** A section that stays absent unless written (its fields' defaults apply once it is). */
function OptionalSection<T extends Parameters<typeof Type.Object>[0]>(props: T) {
  return Type.Optional(Type.Object(props, strict));
}

const Duration = (def?: string) =>
  Type.String({ pattern: DURATION_PATTERN, description: 'a duration such as 250ms, 5s, 1m', ...(def ? { default: def } : {}) });
const Port = (def?: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, description: 'a TCP port (0-65535)', ...(def !== undefined ? { default: def } : {}) });
const Address = (def: string) => Type.String({ minLength: 1, default: def, description: 'an IP address or host name to bind' });
const Name = Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]*$', description: 'a name of letters, digits, ".", "_" or "-"' });
const HostPort = Type.Object({ host: Type.String({ minLength: 1 }), port: Port() }, strict);

export const StoreSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('memory'), Type.Literal('redis')], { default: 'memory', description: 'memory or redis' }),
    url: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'a redis:// or rediss:// URL' })),
    sentinels: Type.Optional(Type.Array(HostPort, { minItems: 1 })),
    sentinelName: Type.Optional(Type.String({ minLength: 1, description: 'the Sentinel master group name' })),
    cluster: Type.Optional(Type.Array(HostPort, { minItems: 1 })),
    keyPrefix: Type.String({ default: 'meshgate:', description: 'prefix of every key meshgate writes' }),
    connectTimeout: Duration('2s'),
    commandTimeout: Duration('1s'),
    options: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'extra ioredis options, passed through' })),
  },
  { ...strict, default: {} },
);

export const DiscoverySchema = Section({
  resync: Duration('5s'),
  reconnectGrace: Duration('10s'),
  stateDir: Type.String({ minLength: 1, default: '.meshgate/state', description: 'where the last known endpoints are kept on disk' }),
});

const RETRY_CONDITIONS = ['connect-failure', 'reset', 'timeout', '502', '503', '504'] as const;
const Ratio = (def: number, description: string) => Type.Number({ minimum: 0, maximum: 1, default: def, description });

export const ServicePolicySchema = Type.Object(
  {
    // Absent: what each instance registered (its sidecar's app.protocol), HTTP/1.1 when it says nothing.
    protocol: Type.Optional(
      Type.Union([Type.Literal('http1'), Type.Literal('h2'), Type.Literal('h2c')], {
        description: 'http1, h2 (HTTP/2 over TLS) or h2c (HTTP/2 over plain TCP, prior knowledge)',
      }),
    ),
    // TLS toward instances outside the mesh (protocol h2); mesh hops use mTLS from the mesh section.
    tls: OptionalSection({
      ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM text, or a PEM file (relative to the working directory), of the CAs to trust besides the system ones' })),
      serverName: Type.Optional(Type.String({ minLength: 1, description: 'the name to send by SNI and verify the certificate against' })),
    }),
    balancer: Type.Union([Type.Literal('p2c-ewma'), Type.Literal('round-robin'), Type.Literal('least-request')], {
      default: 'p2c-ewma',
      description: 'p2c-ewma, round-robin or least-request',
    }),
    zone: Section({
      prefer: Type.Boolean({ default: true, description: "prefer endpoints in the caller's zone" }),
      minHealthy: Type.Integer({ minimum: 1, default: 2, description: 'local endpoints needed before traffic stays in the zone' }),
      minShare: Ratio(0.25, 'share of all endpoints the local ones must make up'),
    }),
    timeouts: Section({
      request: Duration('15s'),
      perTry: Type.Optional(Duration()),
      connect: Duration('1s'),
      websocketIdle: Duration('1h'),
      // A streaming response (gRPC streams) with no data either way for this long is reset (Envoy's stream_idle_timeout).
      streamIdle: Duration('5m'),
    }),
    pool: Section({
      connections: Type.Integer({ minimum: 1, maximum: 4096, default: 256, description: 'max connections per endpoint' }),
      keepAlive: Duration('4s'),
    }),
    retries: Section({
      attempts: Type.Integer({ minimum: 0, maximum: 10, default: 2, description: 'retries after the first try (0 disables)' }),
      on: Type.Array(Type.Union(RETRY_CONDITIONS.map((c) => Type.Literal(c)), { description: RETRY_CONDITIONS.join(', ') }), {
        default: ['connect-failure', 'reset', '502', '503'],
      }),
      budget: Section({
        ratio: Ratio(0.2, 'retries allowed per request, on average'),
        minPerSecond: Type.Number({ minimum: 0, default: 10, description: 'retries always allowed per second' }),
        window: Duration('10s'),
      }),
      backoff: Section({ base: Duration('25ms'), max: Duration('250ms') }),
      maxBodyBytes: Type.Integer({ minimum: 0, default: 65536, description: 'request bodies up to this size are buffered so they can be retried' }),
    }),
    limits: Section({
      maxConcurrent: Type.Integer({ minimum: 1, default: 1024, description: 'requests in flight to the service' }),
      maxPending: Type.Integer({ minimum: 0, default: 1024, description: 'requests waiting for a slot' }),
      // Not Envoy's 3: that many concurrent retries overflow as soon as one instance dies under load
      // (a complaint its users raise). The retry budget bounds retry volume; this is a backstop.
      maxRetries: Type.Integer({ minimum: 0, default: 128, description: 'retries in flight to the service' }),
    }),
    breaker: Section({
      consecutiveFailures: Type.Integer({ minimum: 1, default: 5 }),
      errorRate: Type.Optional(
        Section({ above: Ratio(0.5, 'failure ratio that opens the breaker'), window: Duration('10s'), minRequests: Type.Integer({ minimum: 1, default: 20 }) }),
      ),
      openFor: Duration('5s'),
      maxOpenFor: Duration('5m'),
      halfOpenProbes: Type.Integer({ minimum: 1, default: 1 }),
      shared: Type.Boolean({ default: true, description: 'publish open breakers through the store' }),
    }),
    outlier: Section({
      consecutive5xx: Type.Integer({ minimum: 1, default: 5 }),
      consecutiveConnectFailures: Type.Integer({ minimum: 1, default: 5 }),
      baseEjection: Duration('30s'),
      maxEjection: Duration('5m'),
      maxEjectedPercent: Type.Integer({ minimum: 0, maximum: 100, default: 50 }),
    }),
    healthCheck: OptionalSection({
      path: Type.String({ pattern: '^/', default: '/health', description: 'a path starting with "/"' }),
      interval: Duration('5s'),
      timeout: Duration('1s'),
      unhealthyThreshold: Type.Integer({ minimum: 1, default: 3 }),
      healthyThreshold: Type.Integer({ minimum: 1, default: 2 }),
      // The gRPC health-checking protocol (grpc.health.v1.Health/Check) instead of GET path.
      grpc: OptionalSection({ service: Type.String({ default: '', description: 'the service name asked about ("" = the server as a whole)' }) }),
    }),
  },
  { ...strict, default: {} },
);

/** `- cors: { origins: [...] }`: one plugin name mapped to its config; `dryRun: true` may stand beside it. */
const PluginEntry = Type.Record(Type.String({ minLength: 1 }), Type.Unknown(), {
  minProperties: 1,
  description: 'a plugin name mapped to its config, e.g. "rate-limit: { ... }", optionally with "dryRun: true" beside it',
});
const PluginList = Type.Array(PluginEntry, { description: 'plugins in the order they run' });
const PluginDir = Type.Optional(Type.String({ minLength: 1, description: 'a directory of custom plugin modules, relative to this file' }));

const MatchSchema = Section({
  host: Type.Optional(
    Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
      description: 'a host name, "*.example.com", or a list of them',
    }),
  ),
  pathPrefix: Type.String({ pattern: '^/', default: '/', description: 'a path starting with "/"' }),
  methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]+$', description: 'an upper-case HTTP method' }), { minItems: 1 })),
  headers: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String(), { description: 'header name → exact value' })),
});

export const RouteSchema = Type.Object(
  {
    name: Name,
    match: MatchSchema,
    rewrite: OptionalSection({
      stripPrefix: Type.Boolean({ default: false }),
      prefix: Type.Optional(Type.String({ pattern: '^/', description: 'a path starting with "/"' })),
    }),
    service: Name,
    timeout: Type.Optional(Duration()),
    perTryTimeout: Type.Optional(Duration()),
    retries: OptionalSection({ allowNonIdempotent: Type.Boolean({ default: false, description: 'retry POST/PATCH after the upstream may have seen them' }) }),
    websocket: Type.Boolean({ default: false, description: 'allow WebSocket upgrades on this route' }),
    websocketIdleTimeout: Type.Optional(Duration()),
    grpc: Type.Boolean({ default: false, description: 'a gRPC route: only gRPC and gRPC-Web requests, gRPC-Web translated to gRPC' }),
    plugins: Type.Optional(PluginList),
  },
  strict,
);

const Listener = (port: number, address: string) => Section({ address: Address(address), port: Port(port) });

/**
 * mTLS between proxies: where this process's workload certificate comes from (exactly one of
 * identity, signer, caDir). Absent: every mesh hop is plain HTTP, as before.
 */
const MeshSchema = (gateway: boolean) =>
  OptionalSection({
    trustDomain: Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$', default: 'cluster.local', description: 'a SPIFFE trust domain (lower-case DNS-like name)' }),
    namespace: Type.String({ pattern: '^[A-Za-z0-9._-]+$', default: 'default', description: 'a namespace of letters, digits, ".", "_" or "-"' }),
    ...(gateway ? { service: Type.Optional(Name) } : {}),
    identity: OptionalSection({
      cert: Type.String({ minLength: 1, description: 'the certificate chain file (PEM, leaf first)' }),
      key: Type.String({ minLength: 1, description: 'the private key file (PEM)' }),
      ca: Type.String({ minLength: 1, description: 'the mesh root certificate file (PEM)' }),
    }),
    signer: OptionalSection({
      url: Type.String({ pattern: '^https://', description: 'an https:// URL of `meshgate ca serve`' }),
      token: Type.String({ minLength: 16, description: 'a bootstrap token of at least 16 characters' }),
      ca: Type.String({ minLength: 1, description: 'the mesh root certificate file (PEM)' }),
    }),
    caDir: Type.Optional(Type.String({ minLength: 1, description: 'a CA directory made by `meshgate ca init`' })),
    ttl: Duration('24h'),
    checkEvery: Duration('5s'),
  });

const AuthorizeRule = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1 })),
    from: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
        description: 'a service name, a spiffe:// identity, "*", or a list of them',
      }),
    ),
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]+$', description: 'an upper-case HTTP method' }), { minItems: 1 })),
    paths: Type.Optional(Type.Array(Type.String({ pattern: '^/', description: 'a path starting with "/"' }), { minItems: 1 })),
  },
  strict,
);

const InboundSchema = Section({
  address: Address('0.0.0.0'),
  port: Port(4143),
  authorize: OptionalSection({
    default: Type.Union([Type.Literal('allow'), Type.Literal('deny')], { default: 'deny', description: 'allow or deny' }),
    allow: Type.Array(AuthorizeRule, { default: [] }),
  }),
});
const Admin = (port: number) =>
  Section({
    address: Address('127.0.0.1'),
    port: Port(port),
    token: Type.Optional(Type.String({ minLength: 16, description: 'a bearer token of at least 16 characters' })),
  });
// additionalProperties: TypeBox's Record only emits patternProperties, so names failing the pattern would slip through.
const Services = Type.Record(Name, ServicePolicySchema, { default: {}, additionalProperties: false, description: 'client policy per destination service' });
const LogSchema = Section({
  level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'one of fatal, error, warn, info, debug, trace, silent' }),
  access: Type.Boolean({ default: true, description: 'one JSON access-log line per request' }),
});

export const GatewayConfigSchema = Type.Object(
  {
    node: Section({
      name: Type.String({ minLength: 1, default: 'gateway' }),
      dc: Type.String({ minLength: 1, default: 'local' }),
      zone: Type.String({ default: '' }),
    }),
    store: StoreSchema,
    listeners: Section({
      http: Section({
        address: Address('0.0.0.0'),
        port: Port(8080),
        redirectToHttps: Type.Boolean({ default: false, description: 'answer plain-HTTP requests with a 308 to the https listener' }),
        h2c: Type.Boolean({ default: true, description: 'accept HTTP/2 with prior knowledge (h2c) beside HTTP/1.1' }),
      }),
      https: OptionalSection({
        address: Address('0.0.0.0'),
        port: Port(8443),
        minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { default: 'TLSv1.2', description: 'TLSv1.2 or TLSv1.3' }),
        http2: Type.Boolean({ default: true, description: 'offer HTTP/2 by ALPN (HTTP/1.1 is always offered)' }),
        certificates: Type.Array(
          Type.Object(
            {
              hosts: Type.Optional(Type.Array(Type.String({ minLength: 1, description: 'a host name or "*.example.com"' }), { minItems: 1 })),
              cert: Type.String({ minLength: 1, description: 'a PEM certificate chain file, relative to this file' }),
              key: Type.String({ minLength: 1, description: 'a PEM private key file, relative to this file' }),
            },
            strict,
          ),
          { minItems: 1, description: 'certificates chosen by SNI; the first is the default' },
        ),
        reloadEvery: Duration('2s'),
      }),
      // Other datacenters' edges send failed-over requests here (mTLS; needs the mesh section).
      peer: OptionalSection({ address: Address('0.0.0.0'), port: Port(9443) }),
    }),
    admin: Admin(9901),
    discovery: DiscoverySchema,
    log: LogSchema,
    drainTimeout: Duration('10s'),
    services: Services,
    routes: Type.Array(RouteSchema, { default: [] }),
    plugins: Section({
      dir: PluginDir,
      global: Type.Array(PluginEntry, { default: [], description: 'plugins every route runs first' }),
      services: Type.Record(Name, PluginList, { default: {}, additionalProperties: false, description: 'plugins every route to the service runs, after the global ones' }),
    }),
    watch: Type.Boolean({ default: true, description: 'reload this file and the plugin directory when they change' }),
    mesh: MeshSchema(true),
    datacenters: OptionalSection({
      failover: Section({
        threshold: Ratio(0.7, "local healthy share below which traffic shifts to the next datacenter"),
        hysteresis: Ratio(0.1, 'after a shift, the local healthy share must reach threshold + this to fail back'),
        failbackAfter: Duration('5s'),
        checkEvery: Duration('1s'),
      }),
      peers: Type.Array(
        Type.Object(
          {
            dc: Type.String({ minLength: 1, description: 'the datacenter name (its node.dc)' }),
            address: Type.String({ minLength: 1, description: "the peer edge's listeners.peer address" }),
            port: Port(),
            identity: Type.Optional(Type.String({ pattern: '^spiffe://', description: "the peer edge's SPIFFE identity (default: this gateway's, with the same service name)" })),
          },
          strict,
        ),
        { default: [], description: 'other datacenters, in failover priority order' },
      ),
    }),
  },
  strict,
);

export const ProxyConfigSchema = Type.Object(
  {
    node: Section({
      service: Name,
      instance: Type.Optional(Name),
      dc: Type.String({ minLength: 1, default: 'local' }),
      zone: Type.String({ default: '' }),
      address: Type.Optional(Type.String({ minLength: 1, description: 'the address peers use to reach this proxy' })),
      metadata: Type.Record(Type.String(), Type.String(), { default: {} }),
    }),
    app: Section({
      address: Address('127.0.0.1'),
      port: Port(),
      protocol: Type.Union([Type.Literal('http1'), Type.Literal('h2c')], { default: 'http1', description: 'http1 or h2c (HTTP/2 with prior knowledge, e.g. a gRPC server)' }),
    }),
    inbound: InboundSchema,
    outbound: Listener(4140, '127.0.0.1'),
    admin: Admin(4191),
    registration: Section({ ttl: Duration('10s'), heartbeat: Duration('3s') }),
    store: StoreSchema,
    discovery: DiscoverySchema,
    log: LogSchema,
    drainTimeout: Duration('10s'),
    services: Services,
    inboundTimeout: Duration('30s'),
    inboundWebsocketIdleTimeout: Duration('1h'),
    plugins: Section({
      dir: PluginDir,
      inbound: Type.Array(PluginEntry, { default: [], description: "plugins run on the inbound side, before the app" }),
    }),
    mesh: MeshSchema(false),
  },
  strict,
);

export type StoreConfig = Static<typeof StoreSchema>;
export type DiscoveryConfig = Static<typeof DiscoverySchema>;
export type ServicePolicy = Static<typeof ServicePolicySchema>;
export type RouteConfig = Static<typeof RouteSchema>;
export type GatewayConfig = Static<typeof GatewayConfigSchema>;
export type ProxyConfig = Static<typeof ProxyConfigSchema>;
export type LogConfig = GatewayConfig['log'];
export type MeshConfig = NonNullable<ProxyConfig['mesh']> & { service?: string };
export type AuthorizeConfig = NonNullable<ProxyConfig['inbound']['authorize']>;
