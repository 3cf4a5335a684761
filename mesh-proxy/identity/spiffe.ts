// Workload identities: spiffe://<trust-domain>/ns/<namespace>/sa/<service> (the SPIFFE ID form
// Istio and Kuma use), so a certificate names the service a peer must be.
const LABEL = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function spiffeId(trustDomain: string, namespace: string, service: string): string {
  if (!LABEL.test(trustDomain)) throw new TypeError(`not a valid trust domain: ${trustDomain}`);
  if (!SEGMENT.test(namespace) || !SEGMENT.test(service)) throw new TypeError(`not a valid namespace or service name: ${namespace}/${service}`);
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${service}`;
}
