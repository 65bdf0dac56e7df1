// Stands in for rate-limiter-flexible and picomatch-browser in the bundle. gitbeaker's
// requester-utils imports them for its client-side rate limiter, which gitops-bot switches
// off (rateLimits: {} in src/gitlab/client.ts; GitLab's 429s are handled in retry.ts).
// Leaving them out saves 86 KiB that every start would parse. Used by mistake, they throw.
const unused = () => {
  throw new Error('gitbeaker client-side rate limiting is not part of the gitops-bot bundle');
};
export class RateLimiterMemory {
  constructor() {
    unused();
  }
}
export class RateLimiterQueue {
  constructor() {
    unused();
  }
}
export default { isMatch: unused };
