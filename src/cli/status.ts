// `gitops-bot status`: what runs where and what is proposed, read from GitLab alone.
//
// Observe → decide → print. The requests, whatever the length of the history: the bot's
// user (1), the ops project's environments (1) and its newest Deployments (one page: 1),
// the bot's open merge requests (1), for each distinct deployed commit the history before
// it (one page of commits, for the promotion records: 1) and the bot's gitops-bot/deploy
// status on it (1), and for each open proposal its comments (the verdict and the diff
// comment: 1). An environment whose newest Deployment is older than that page costs one
// more request.
import type { Command } from 'commander';
import type { DeploymentInfo } from '../gitlab/client.js';
import { connection } from '../gitlab/connection.js';
import { DIFF_MARKER } from '../model/markers.js';
import { CliError, ExitCode } from './errors.js';

const DEPLOY_STATUS = 'gitops-bot/deploy';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('what runs where: deployed tag and health per environment and app, and what is proposed')
    .requiredOption('--project <path>', 'the ops project')
    .option('--env <name>', 'only this environment (a policy environment name, e.g. production)')
    .option('--json', 'print the table as one JSON line')
    .option(
      '--bot <username>',
      "gitops-bot's GitLab user, whose comments are read (default: the token's own user)",
    )
    .option('--gitlab-url <url>', 'GitLab URL (default: $GITLAB_URL, then $CI_SERVER_URL)')
    .addHelpText(
      'after',
      `
One row per environment and app: the tag and digest the newest GitLab Deployment applied
(from the promotion record in gitops-bot's commit), its health and since when, and the tag
gitops-bot proposes in an open merge request with what it waits for (the gate's verdict).
Read from GitLab alone, in a few requests however long the history: Deployments
(environments named <env>/<app>, written by serve's deployment feedback), gitops-bot's open
merge requests and the comments gitops-bot's own account wrote on them. With another
token than gitops-bot's (any Reporter of the ops project), name that account with --bot.

Exit codes: 0 printed; 2 bad arguments; 8 token problems (or no access to the project); 1 other.

Example:
  $ gitops-bot status --project root/helloworld-ops --env production
  ENVIRONMENT  APP         DEPLOYED  DIGEST        HEALTH   SINCE      PROPOSED    WAITS FOR
  production   helloworld  ci-34     3f1c2d3e4b5a  Healthy  12:03 UTC  ci-35 (!3)  1 approval from operator

    !3: https://gitlab.example.com/root/helloworld-ops/-/merge_requests/3
`,
    )
    .action(statusAction);
}

async function statusAction(opts: {
  project: string;
  env?: string;
  json?: boolean;
  bot?: string;
  gitlabUrl?: string;
}): Promise<void> {
  if (opts.env !== undefined && !opts.env.trim())
    throw new CliError('--env: an empty environment name', ExitCode.USAGE);
  const conn = connection(opts.gitlabUrl);
  const { statusRows, renderStatusTable } = await import('../feedback/status.js');
  const { facts, requests } = await readFacts(conn, opts.project, opts.env, opts.bot);
  const rows = statusRows(facts);
  if (opts.json) process.stdout.write(`${JSON.stringify({ project: opts.project, rows, requests })}\n`);
  else process.stdout.write(renderStatusTable(rows, facts.now));
}

/** Everything the table needs, from GitLab, and how many requests that took. */
export async function readFacts(
  conn: { url: string; token: string },
  project: string,
  env?: string,
  /** gitops-bot's username, when the token is someone else's */
  botUsername?: string,
): Promise<{ facts: import('../feedback/status.js').StatusFacts; requests: number }> {
  const [
    { GitLabGate, GitLabError },
    { readRecordComment, readRecordTrailer },
    { newestDeployments, parseVerdictComment },
  ] = await Promise.all([
    import('../gitlab/client.js'),
    import('../model/record.js'),
    import('../feedback/status.js'),
  ]);
  type Raw = Record<string, unknown>;
  // Two lists the client has no method for; subclassing keeps them under its retry policy
  // and request count.
  class StatusGitLab extends GitLabGate {
    async openMergeRequestsBy(p: string, username: string): Promise<Raw[]> {
      return (await this.call(`list open merge requests of ${p} by ${username}`, () =>
        this.api.MergeRequests.all({
          projectId: p,
          state: 'opened',
          authorUsername: username,
          perPage: 100,
          maxPages: 1,
        } as never),
      )) as Raw[];
    }
    /** one page of the history up to `sha`, newest first, with the messages */
    async historyTo(p: string, sha: string): Promise<Array<{ id: string; message: string }>> {
      const list = (await this.call(`list the commits up to ${sha.slice(0, 8)}`, () =>
        this.api.Commits.all(p, { refName: sha, perPage: 100, maxPages: 1 } as never),
      )) as Raw[];
      return list.map((c) => ({ id: String(c.id), message: String(c.message ?? '') }));
    }
  }
  const gl = new StatusGitLab({ url: conn.url, token: conn.token });
  const now = new Date();
  let bot: { id: number; username: string };
  let environments: Awaited<ReturnType<StatusGitLab['listEnvironments']>>;
  let deployments: DeploymentInfo[];
  let mrs: Raw[];
  try {
    if (botUsername) {
      const id = await gl.userId(botUsername);
      if (id === null) throw new CliError(`--bot ${botUsername}: no such user`, ExitCode.USAGE);
      bot = { id, username: botUsername };
    } else bot = await gl.currentUser();
    [environments, deployments, mrs] = await Promise.all([
      gl.listEnvironments(project),
      gl.listDeployments(project, { orderBy: 'id', sort: 'desc', perPage: 100 }),
      gl.openMergeRequestsBy(project, bot.username),
    ]);
  } catch (e) {
    // A project the token cannot see is a 404 in GitLab: a token problem, for the user.
    if (e instanceof GitLabError && e.status === 404)
      throw new CliError(`${project}: no such project, or the token cannot read it`, ExitCode.AUTH);
    throw e;
  }
  const ours = (name: string) => {
    const at = name.lastIndexOf('/');
    return at > 0 && (!env || name.slice(0, at) === env);
  };
  // An environment whose newest Deployment is not on the page: one more request for it.
  const paged = new Set(deployments.map((d) => d.environment));
  const older = await Promise.all(
    environments
      .filter((e) => ours(e.name) && !paged.has(e.name))
      .map((e) =>
        gl.listDeployments(project, { environment: e.name, orderBy: 'id', sort: 'desc', perPage: 1 }),
      ),
  );
  deployments = [...deployments.filter((d) => ours(d.environment)), ...older.flat()];
  const newest = newestDeployments(deployments);
  const shas = [...new Set([...newest.values()].map((d) => d.sha))];
  const records: Record<string, import('../model/record.js').PromotionRecord[]> = {};
  const deployStatus: Record<string, { state: string; description: string } | undefined> = {};
  await Promise.all(
    shas.map(async (sha) => {
      const [history, status] = await Promise.all([
        gl.historyTo(project, sha),
        gl.commitStatus(project, sha, DEPLOY_STATUS),
      ]);
      records[sha] = history.flatMap((c) => {
        const r = readRecordTrailer(c.message);
        return r ? [r] : [];
      });
      // A Developer may post statuses under any name: only the bot's own is its word.
      deployStatus[sha] =
        status && status.authorId === bot.id
          ? { state: status.state, description: status.description }
          : undefined;
    }),
  );
  const proposals = await Promise.all(
    mrs.map(async (m) => {
      const iid = Number(m.iid);
      const notes = (await gl.notes(project, iid)).filter((n) => !n.system && n.authorId === bot.id);
      const diff = notes.find((n) => n.body.startsWith(DIFF_MARKER));
      const verdict = notes.find((n) => parseVerdictComment(n.body));
      return {
        iid,
        webUrl: String(m.web_url),
        sha: String(m.sha),
        record: diff ? readRecordComment(diff.body) : null,
        verdict: verdict ? parseVerdictComment(verdict.body) : null,
      };
    }),
  );
  return {
    facts: {
      now,
      ...(env ? { env } : {}),
      environments: environments.map((e) => e.name),
      deployments,
      records,
      deployStatus,
      proposals,
    },
    requests: gl.requests,
  };
}
