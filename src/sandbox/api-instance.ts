// REST routes for the instance and its users: version, metadata, user, users.
import { type ApiDeps, authed } from './api-common.js';
import { notFound, Page, type Router, str } from './http.js';

export function register(router: Router, { core, entities }: ApiDeps): void {
  const store = core.store;

  for (const path of ['/version', '/metadata']) {
    router.on('GET', path, (ctx) => {
      authed(ctx);
      return { version: '17.11.0-sandbox', revision: 'sandbox', kas: { enabled: false }, enterprise: false };
    });
  }

  router.on('GET', '/user', (ctx) => entities.currentUser(authed(ctx)));

  router.on('GET', '/users', (ctx) => {
    authed(ctx);
    const username = str(ctx, 'username');
    const users = username
      ? store.data.users.filter((u) => u.username.toLowerCase() === username.toLowerCase())
      : store.data.users;
    return new Page(users.map((u) => entities.user(u)));
  });

  router.on('GET', '/users/:uid', (ctx) => {
    authed(ctx);
    const u = store.user(Number(ctx.params.uid));
    if (!u) throw notFound('User');
    return entities.user(u);
  });
}
