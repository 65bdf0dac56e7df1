// What the demos share: their output (numbered steps, indented text) and gitops-bot serve on
// the sandbox, wired as the README configures a real one: GitLab's webhooks (push, merge
// request, note) to serve, GitLab's push webhook to Argo CD, and Argo CD's notifications
// (argocd-notifications-cm) to serve's POST /argocd.
import type { GitLabGate } from './gitlab/client.js';
import type { Sandbox } from './sandbox/index.js';
import { createWebhookServer, type WebhookServer } from './server/webhook.js';

const DEMO_SECRET = 'demo-secret';

export const out = (s = '') => process.stdout.write(`${s}\n`);
const [bold, plain] = process.stdout.isTTY ? ['\x1b[1m', '\x1b[0m'] : ['', ''];
export const step = (n: number, s: string) => out(`\n${bold}${n}. ${s}${plain}`);
export const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');

export async function serveOnSandbox(
  sb: Sandbox,
  project: string,
  bot: { gitlab: GitLabGate; botUserId: number },
): Promise<{ server: WebhookServer; url: string }> {
  const server = createWebhookServer({
    ctx: { gitlab: bot.gitlab, botUserId: bot.botUserId },
    secret: DEMO_SECRET,
    projects: [project],
  });
  const url = await server.listen(0, '127.0.0.1');
  const hook = (target: string, body: Record<string, unknown>) =>
    fetch(`${sb.apiUrl}/projects/${encodeURIComponent(project)}/hooks`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'operator-token', 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: target, ...body }),
    }).then((r) => {
      if (!r.ok) throw new Error(`adding the hook ${target}: ${r.status}`);
    });
  await hook(`${url}/webhook`, {
    token: DEMO_SECRET,
    push_events: true,
    merge_requests_events: true,
    note_events: true,
  });
  if (sb.argocd) {
    await hook(`${sb.argocdUrl}/api/webhook`, { push_events: true });
    sb.argocd.notifyTarget = { url: `${url}/argocd`, token: DEMO_SECRET };
  }
  return { server, url };
}
