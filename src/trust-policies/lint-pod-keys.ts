import type { ClusterConfig } from '../config/index.js';
import { issuerHostPath, principalMatcher } from './principals.js';
import type { ValidFile } from './load.js';
import { isPodKey } from './pod-keys.js';
import type { Path, Problem } from './source.js';

type RawStatement = {
  Principal?: '*' | { Federated: string | string[] };
  Condition?: Record<string, unknown>;
};

/**
 * A role that tests pod-attestation keys for a cluster without `podAttestation` sees them
 * missing: its Allow never matches there (or, with ForAllValues or a negated operator, matches
 * vacuously). Either way the author meant something else, so lint says which clusters.
 */
export function podKeyProblems(
  files: readonly ValidFile[],
  clusters: readonly ClusterConfig[],
): Problem[] {
  const problems: Problem[] = [];
  for (const file of files) {
    if (file.kind !== 'Role') continue;
    const policies: Array<[string, unknown]> = [['trustPolicy', file.raw.trustPolicy.Statement]];
    if (file.raw.shadowTrustPolicy)
      policies.push(['shadowTrustPolicy', file.raw.shadowTrustPolicy.Statement]);
    for (const [field, statements] of policies) {
      const list = (Array.isArray(statements) ? statements : [statements]) as RawStatement[];
      list.forEach((statement, index) => {
        const matched = clustersOf(statement, clusters).filter(
          (cluster) => !cluster.podAttestation,
        );
        if (matched.length === 0) return;
        for (const [operator, entries] of Object.entries(statement.Condition ?? {})) {
          if (entries === null || typeof entries !== 'object' || Array.isArray(entries)) continue;
          for (const key of Object.keys(entries)) {
            if (!isPodKey(key)) continue;
            const path: Path = [
              field,
              'Statement',
              ...(Array.isArray(statements) ? [index] : []),
              'Condition',
              operator,
              key,
            ];
            const names = matched.map((cluster) => cluster.name).join(', ');
            problems.push(
              file.source.problem(
                path,
                `"${key}" comes from pod attestation, which cluster(s) ${names} do not enable (podAttestation): the key is missing there`,
                {
                  key: true,
                  severity: 'warning',
                },
              ),
            );
          }
        }
      });
    }
  }
  return problems;
}

function clustersOf(statement: RawStatement, clusters: readonly ClusterConfig[]): ClusterConfig[] {
  if (statement.Principal === undefined || statement.Principal === '*') return [...clusters];
  const federated = [statement.Principal.Federated].flat();
  return clusters.filter((cluster) =>
    federated.some((principal) =>
      principalMatcher(principal)(cluster.name, cluster.issuer, issuerHostPath(cluster.issuer)),
    ),
  );
}
