// What the gate tests against the sandbox share: the story's sandbox with main protected as
// strict mode has it, gitops-bot's gate context, and a reviewer's MR that bumps service.yml.
import { GitLabGate } from '../../src/gitlab/client.js';
import { MAIN_PROTECTION, type Sandbox } from '../../src/sandbox/index.js';
import { branchWithMr, client, protect, sandboxFixture } from '../helpers.js';

/** The story's sandbox, main protected (Developers, so the bot, merge), and gitops-bot's user id. */
export async function gateSandbox(): Promise<{ sb: Sandbox; botId: number }> {
  const sb = await sandboxFixture();
  await protect(sb, MAIN_PROTECTION);
  const botId = (await new GitLabGate({ url: sb.url, token: 'gitops-bot-token' }).currentUser()).id;
  return { sb, botId };
}

/** gitops-bot's gate context, with a client of its own (nothing cached from another test). */
export function gateContext(sb: Sandbox, botId: number): { gitlab: GitLabGate; botUserId: number } {
  return { gitlab: new GitLabGate({ url: sb.url, token: 'gitops-bot-token' }), botUserId: botId };
}

/** reviewer's MR "Bump" into main from `branch`, its one commit setting service.yml to `content`. */
export function serviceBump(sb: Sandbox, branch: string, content: string) {
  return branchWithMr(
    client(sb, 'reviewer'),
    branch,
    'main',
    'Bump',
    [{ action: 'update', filePath: 'service.yml', content }],
    'Bump',
  );
}
