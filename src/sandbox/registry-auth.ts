// GitLab's container registry token service, `GET /jwt/auth`: a registry configured for
// token auth (Debian's docker-registry with `auth: token`) sends clients here with a
// `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge; they come back with HTTP
// basic credentials (a username and a token, or gitlab-ci-token and a job token) and get a
// JWT listing the actions they may take. As on GitLab: pull needs read access to the project
// (anonymous on public ones), push needs Developer; what is not allowed is left out of the
// token rather than refused, and bad credentials are a 401.
import { createSign, type KeyObject, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SandboxCore } from './core.js';
import { basicAuthUser } from './git-http.js';
import { AccessLevel } from './state.js';

export interface RegistryTokenOptions {
  /** the RSA private key tokens are signed with */
  key: KeyObject;
  /** its certificate, DER: sent in the JWT's x5c header; the registry's rootcertbundle holds it */
  certificate: Buffer;
  /** `iss` of the tokens; the registry's `auth.token.issuer` (GitLab's default: gitlab-issuer) */
  issuer?: string;
  /** the registry's `auth.token.service` (GitLab's: container_registry) */
  service?: string;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export function handleJwtAuth(
  core: SandboxCore,
  opts: RegistryTokenOptions,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  setUser: (u: string | null) => void,
): void {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const service = opts.service ?? 'container_registry';
  if (url.searchParams.get('service') !== service) {
    send(400, { errors: [{ code: 'INVALID_REQUEST', message: 'unknown service' }] });
    return;
  }
  const user = basicAuthUser(core, req.headers.authorization);
  setUser(user?.username ?? null);
  if (req.headers.authorization && !user) {
    send(401, { errors: [{ code: 'UNAUTHORIZED', message: 'HTTP Basic: Access denied' }] });
    return;
  }
  const access: Array<{ type: string; name: string; actions: string[] }> = [];
  for (const scope of url.searchParams.getAll('scope')) {
    const [type, name, actions] = scope.split(':');
    if (type !== 'repository' || !name || !actions) continue;
    // A registry repository is the project's path, or a path below it (group/app/worker).
    const parts = name.split('/');
    let project = undefined as ReturnType<SandboxCore['store']['project']>;
    for (let n = parts.length; n >= 2 && !project; n--)
      project = core.store.project(parts.slice(0, n).join('/'));
    const level = project && core.canRead(user, project) ? core.accessLevel(user, project) : -1;
    const allowed = actions
      .split(',')
      .filter((a) =>
        a === 'pull'
          ? !!project &&
            core.canRead(user, project) &&
            (project.visibility === 'public' || level >= AccessLevel.REPORTER)
          : a === 'push'
            ? level >= AccessLevel.DEVELOPER
            : false,
      );
    access.push({ type, name, actions: allowed });
  }
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', x5c: [opts.certificate.toString('base64')] };
  const claims = {
    iss: opts.issuer ?? 'gitlab-issuer',
    sub: user?.username ?? '',
    aud: service,
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: randomUUID(),
    access,
  };
  const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(signing).sign(opts.key);
  send(200, { token: `${signing}.${b64url(signature)}` });
}
