/**
 * Limits relying clouds put on what Tessera issues, which only show up at the cloud otherwise:
 * AWS refuses AssumeRoleWithWebIdentity when `sub` is over 255 characters
 * (SubjectFromWebIdentityToken), GCP workload identity federation when `google.subject`
 * (usually `assertion.sub`) is over 127 bytes.
 */
export interface SubjectLimit {
  cloud: string;
  targets(audience: string): boolean;
  max: number;
  unit: 'characters' | 'bytes';
  what: string;
}

const SUBJECT_LIMITS: readonly SubjectLimit[] = [
  {
    cloud: 'AWS',
    targets: (audience) => audience === 'sts.amazonaws.com',
    max: 255,
    unit: 'characters',
    what: "AWS's SubjectFromWebIdentityToken",
  },
  {
    cloud: 'GCP',
    targets: (audience) =>
      audience.startsWith('//iam.googleapis.com/') ||
      audience.startsWith('https://iam.googleapis.com/'),
    max: 127,
    unit: 'bytes',
    what: "GCP's google.subject",
  },
];

/** The Azure audience of federated credentials; @azure/identity re-reads the token file only every 5 minutes. */
export const AZURE_AUDIENCE = 'api://AzureADTokenExchange';
export const AZURE_MIN_LIFETIME_SECONDS = 15 * 60;

const measure = (text: string, unit: SubjectLimit['unit']): number =>
  unit === 'bytes' ? Buffer.byteLength(text, 'utf8') : [...text].length;

/** The limits that apply to a token issued for these audiences. */
export const subjectLimitsFor = (audiences: readonly string[]): SubjectLimit[] =>
  SUBJECT_LIMITS.filter((limit) => audiences.some((audience) => limit.targets(audience)));

/** Why `sub` cannot be issued for these audiences, or undefined. Names the limit, never the value. */
export function subjectLimitProblem(sub: string, audiences: readonly string[]): string | undefined {
  for (const limit of subjectLimitsFor(audiences)) {
    const size = measure(sub, limit.unit);
    if (size > limit.max)
      return `the issued subject would be ${size} ${limit.unit}; ${limit.what} allows at most ${limit.max}`;
  }
  return undefined;
}

/** Longest values Kubernetes allows (namespace: DNS label; names: DNS subdomain); `undefined` = unbounded. */
const KUBERNETES_MAX: Record<string, number | undefined> = {
  namespace: 63,
  serviceAccount: 253,
  pod: 253,
  cluster: 63,
};
const PREFIX = 'system:serviceaccount:';
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** What a trust-policy statement pins: literal namespaces and service-account names it admits. */
export interface Pinned {
  namespace?: string[];
  serviceAccount?: string[];
}

/**
 * The longest subject `template` can render (default: the source `sub`), in `unit`, given what
 * the statements pin; `Infinity` when a variable is unbounded (`{{claims.…}}`).
 */
export function maxSubjectSize(
  template: string | undefined,
  pinned: Pinned,
  unit: SubjectLimit['unit'],
): number {
  const longest = (values: string[] | undefined, fallback: number) =>
    values ? Math.max(...values.map((value) => measure(value, unit))) : fallback;
  const namespace = longest(pinned.namespace, KUBERNETES_MAX.namespace as number);
  const serviceAccount = longest(pinned.serviceAccount, KUBERNETES_MAX.serviceAccount as number);
  const variable = (name: string): number => {
    if (name === 'namespace') return namespace;
    if (name === 'serviceAccount') return serviceAccount;
    if (name === 'sub') return PREFIX.length + namespace + 1 + serviceAccount;
    return KUBERNETES_MAX[name] ?? Infinity;
  };
  const text = template ?? '{{sub}}';
  let size = 0;
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    size += measure(text.slice(last, match.index), unit) + variable(match[1] as string);
    last = (match.index ?? 0) + match[0].length;
  }
  return size + measure(text.slice(last), unit);
}

const asList = (value: unknown): string[] | undefined =>
  typeof value === 'string'
    ? [value]
    : Array.isArray(value) && value.every((item) => typeof item === 'string')
      ? value
      : undefined;

/**
 * Literal namespaces and service accounts one Allow statement pins with `StringEquals` (on
 * the IRSA `…:sub` key, `kubernetes.io/namespace` or `kubernetes.io/serviceaccount/name`).
 */
export function pinnedBy(condition: unknown): Pinned {
  const equals = (condition as { StringEquals?: Record<string, unknown> } | undefined)
    ?.StringEquals;
  if (!equals || typeof equals !== 'object') return {};
  const pinned: Pinned = {};
  for (const [key, value] of Object.entries(equals)) {
    const values = asList(value);
    if (!values) continue;
    const lower = key.toLowerCase();
    if (lower === 'kubernetes.io/namespace') pinned.namespace = values;
    else if (lower === 'kubernetes.io/serviceaccount/name') pinned.serviceAccount = values;
    else if (
      lower.endsWith(':sub') &&
      values.every((sub) => sub.startsWith(PREFIX) && sub.split(':').length === 4)
    ) {
      pinned.namespace = values.map((sub) => sub.split(':')[2] as string);
      pinned.serviceAccount = values.map((sub) => sub.split(':')[3] as string);
    }
  }
  return pinned;
}
