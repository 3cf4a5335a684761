// A proxy's admin /endpoints document, and small calls the discovery tests share.
import { Agent, request } from 'undici';

export const REGISTRY_PREFIX = 'meshgate:{registry}:';
export const REGISTRY_CHANNEL = `${REGISTRY_PREFIX}events`;

export type { EndpointsDoc, EndpointView } from '../../mesh-proxy/admin/endpoints-view.ts';
import type { EndpointsDoc, EndpointView } from '../../mesh-proxy/admin/endpoints-view.ts';

export const agent = new Agent({ keepAliveTimeout: 1000, connections: 8 });

export async function getJson<T>(url: string): Promise<T> {
  const res = await request(url, { dispatcher: agent });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${url} → ${res.statusCode}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

/** GET through a sidecar's outbound listener, naming the service in Host (fetch would drop it). */
export async function callThrough(outbound: number, service: string, path = '/'): Promise<{ status: number; app: string; body: string }> {
  const res = await request(`http://127.0.0.1:${outbound}${path}`, { dispatcher: agent, headers: { host: service } });
  const body = await res.body.text();
  return { status: res.statusCode, app: String(res.headers['x-app'] ?? ''), body };
}

export function endpointsOf(admin: string): Promise<EndpointsDoc> {
  return getJson<EndpointsDoc>(`${admin}/endpoints`);
}

export function findIn(doc: EndpointsDoc, service: string, id: string): EndpointView | undefined {
  return doc.services[service]?.find((e) => e.id === id);
}
