// Issue 7: 100 promotions (10 apps x 10 tags, 8 at a time) against a sandbox that turns
// 20 % of API answers into faults of every kind, drop-after-write included. The end state
// must be exactly what a calm GitLab would have given.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLab } from '../../src/gitlab/client.js';
import { type PromoteResult, promote } from '../../src/promote/promote.js';
import { isDiffComment } from '../../src/render/diff-comment.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { addApps, client, OPS, sandboxFixture } from '../helpers.js';

const APPS = 10;
const TAGS = 10;
let sb: Sandbox;

before(async () => {
  sb = await sandboxFixture();
  await addApps(sb, APPS, (i) => `team/app${i}:ci-1`);
});
after(() => sb?.close());

test('chaos: 100 promotions under 20 % faults end with one correct MR per app', {
  timeout: 300_000,
}, async () => {
  // Every app gets ci-2 .. ci-11, interleaved across apps and shuffled within the stream
  // (seeded), so older tags sometimes arrive after newer ones, as racing pipelines do.
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const jobs = Array.from({ length: APPS * TAGS }, (_, n) => ({
    app: n % APPS,
    tag: 2 + Math.floor(n / APPS),
  }));
  for (let i = jobs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * Math.min(i + 1, 15)); // a local shuffle: mostly in order
    [jobs[i], jobs[i - j]] = [jobs[i - j], jobs[i]];
  }
  sb.setFaults('rate=0.2,seed=7,slow_ms=300');
  const clients: GitLab[] = [];
  const results: Array<PromoteResult | Error> = [];
  const log: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < jobs.length) {
        const { app, tag } = jobs[next++];
        const gitlab = new GitLab({
          url: sb.url,
          token: 'gitops-bot-token',
          retry: { attempts: 10, baseDelayMs: 20, maxDelayMs: 500, budgetMs: 60_000 },
        });
        clients.push(gitlab);
        try {
          log.push(`app${app} ci-${tag} start`);
          results.push(
            await promote(
              {
                project: OPS,
                files: [`apps/app${app}.yml`],
                image: `registry.example.com/team/app${app}`,
                tag: `ci-${tag}`,
                env: 'chaos',
                targetBranch: 'main',
              },
              { gitlab },
            ),
          );
          const r = results.at(-1) as PromoteResult;
          log.push(`app${app} ci-${tag}: ${r.action} (${r.reason}) ${r.commit?.slice(0, 8) ?? ''}`);
        } catch (e) {
          results.push(e as Error);
          log.push(`app${app} ci-${tag}: error ${(e as Error).message}`);
        }
      }
    }),
  );
  const faults = sb.faults();
  sb.setFaults(null);
  const retries = clients.reduce((n, c) => n + c.retries, 0);
  const requests = clients.reduce((n, c) => n + c.requests, 0);
  console.log(`chaos: ${requests} requests, ${retries} retries; faults injected: ${JSON.stringify(faults)}`);
  const crashed = results.filter((r) => r instanceof Error) as Error[];
  assert.deepEqual(
    crashed.map((e) => e.message),
    [],
    'every promotion ends with a result',
  );
  const actions: Record<string, number> = {};
  for (const r of results as PromoteResult[]) actions[r.action] = (actions[r.action] ?? 0) + 1;
  console.log(`chaos: outcomes ${JSON.stringify(actions)}`);
  for (const k of ['500', '502', '503', '429', 'slow', 'reset', 'drop-after-write'])
    assert.ok((faults[k] ?? 0) > 0, `fault ${k} was injected`);

  const op = client(sb, 'operator');
  const open = (await op.MergeRequests.all({ projectId: OPS, state: 'opened' })).filter((m) =>
    m.source_branch.startsWith('gitops-bot/chaos/'),
  );
  assert.equal(open.length, APPS, `exactly one open MR per app: ${open.map((m) => m.source_branch)}`);
  assert.equal(new Set(open.map((m) => m.source_branch)).size, APPS);
  for (const mr of open) {
    const app = /app\d+/.exec(mr.source_branch)![0];
    const story = () => log.filter((l) => l.startsWith(`${app} `)).join('\n');
    const file = String(await op.RepositoryFiles.showRaw(OPS, `apps/${app}.yml`, mr.source_branch));
    assert.match(
      file,
      new RegExp(`team/${app}:ci-${TAGS + 1}\\n`),
      `${app} is at its newest tag:\n${story()}`,
    );
    const notes = await op.MergeRequestNotes.all(OPS, mr.iid);
    const diffs = notes.filter((n) => isDiffComment(n.body));
    assert.equal(diffs.length, 1, `${app}: exactly one diff comment`);
    assert.match(diffs[0].body, new RegExp(`ci-${TAGS + 1}`), story());
    assert.match(mr.title, new RegExp(`ci-${TAGS + 1}`));
  }
  const branches = (await op.Branches.all(OPS)).map((b) => b.name).filter((n) => n !== 'main');
  assert.deepEqual(branches.sort(), open.map((m) => m.source_branch).sort(), 'no orphan branches');
});
