export { issueJwt } from './jwt.js';
export type { IssuedJwt, JwtIssueRequest } from './jwt.js';
