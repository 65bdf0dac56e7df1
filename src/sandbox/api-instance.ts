// REST routes for the instance and its users: version, metadata, user, users.
import { type ApiDeps, authed } from './api-common.js';
import { notFound, Page, type Router, str } from './http.js';
import type { User } from './state.js';

export function register(router: Router, { core, entities }: ApiDeps): void {
  const store = core.store;

  for (const path of ['/version', '/metadata']) {
    router.on('GET', path, (ctx) => {
      authed(ctx);
      // No agent server (KAS) runs here: disabled, with GitLab's nulls for its address and version.
      const kas = { enabled: false, externalUrl: null, externalK8sProxyUrl: null, version: null };
      return { version: '17.11.0-sandbox', revision: 'sandbox', kas, enterprise: false };
    });
  }

  // An administrator sees the admin view of users (UserWithAdmin), everyone else the public one.
  const viewOf = (viewer: User) => (u: User) => (viewer.isAdmin ? entities.adminUser(u) : entities.user(u));

  router.on('GET', '/user', (ctx) => {
    const u = authed(ctx);
    return u.isAdmin ? entities.adminUser(u) : entities.currentUser(u);
  });

  router.on('GET', '/users', (ctx) => {
    const viewer = authed(ctx);
    const username = str(ctx, 'username');
    const users = username
      ? store.data.users.filter((u) => u.username.toLowerCase() === username.toLowerCase())
      : store.data.users;
    return new Page(users.map(viewOf(viewer)));
  });

  router.on('GET', '/users/:uid', (ctx) => {
    const viewer = authed(ctx);
    const u = store.user(Number(ctx.params.uid));
    if (!u) throw notFound('User');
    return viewOf(viewer)(u);
  });
}
