// Workload identities: spiffe://<trust-domain>/ns/<namespace>/sa/<service> (the SPIFFE ID form
// Istio and Kuma use), so a certificate names the service a peer must be.
const LABEL = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function spiffeId(trustDomain: string, namespace: string, service: string): string {
  if (!LABEL.test(trustDomain)) throw new TypeError(`not a valid trust domain: ${trustDomain}`);
  if (!SEGMENT.test(namespace) || !SEGMENT.test(service)) throw new TypeError(`not a valid namespace or service name: ${namespace}/${service}`);
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${service}`;
}

export interface SpiffeParts {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly service: string;
}

const ID_FORM = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** The parts of a spiffe://<td>/ns/<ns>/sa/<service> identity, or undefined for any other form. */
export function parseSpiffeId(id: string): SpiffeParts | undefined {
  const m = ID_FORM.exec(id);
  if (m === null || !LABEL.test(m[1]) || !SEGMENT.test(m[2]) || !SEGMENT.test(m[3])) return undefined;
  return { trustDomain: m[1], namespace: m[2], service: m[3] };
}

/** The SPIFFE identity in a subjectaltname string as Node reports it ("URI:spiffe://…, DNS:…"). */
export function identityInSan(san: string | undefined): string | undefined {
  if (san === undefined) return undefined;
  for (const part of san.split(', ')) if (part.startsWith('URI:spiffe://')) return part.slice(4);
  return undefined;
}

/** The signing endpoint's own identity: a namespace the signer never issues to workloads. */
export const SIGNER_NAMESPACE = 'meshgate-system';
export const SIGNER_SERVICE = 'ca';
