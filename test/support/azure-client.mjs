// What an app container runs: @azure/identity's WorkloadIdentityCredential, configured only by
// the environment the Azure workload-identity webhook would set (AZURE_TENANT_ID,
// AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST). Prints the token as JSON.
import process from 'node:process';
import { WorkloadIdentityCredential } from '@azure/identity';

const credential = new WorkloadIdentityCredential({ disableInstanceDiscovery: true });
const token = await credential.getToken('https://storage.azure.com/.default');
process.stdout.write(
  `${JSON.stringify({ token: token.token, expiresOnTimestamp: token.expiresOnTimestamp })}\n`,
);
