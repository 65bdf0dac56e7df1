// The sandbox's REST responses, checked against the JSON schemas GitLab validates its own API
// with (test/fixtures/gitlab-schemas, copied from gitlabhq; SOURCE.md names each file's commit).
// One test per endpoint, so a failure names the endpoint, the schema and every violation.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, OPS, sandboxFixture } from '../helpers.js';

// Compiled, this file runs from <outDir>/test/sandbox/; the schemas stay in the source tree.
const SCHEMAS = fileURLToPath(new URL('../../../test/fixtures/gitlab-schemas/', import.meta.url));
// GitLab's schemas live in spec/fixtures/api/schemas/ and name each other by relative path, so
// each gets the base URI of its path there (as json_schemer gives each file its file:// URI).
const BASE = 'https://gitlab.invalid/spec/fixtures/api/schemas/';
const JSON_TYPES = new Set(['null', 'boolean', 'object', 'array', 'number', 'integer', 'string']);

/**
 * json_schemer (GitLab's matcher) counts a `type` it does not know ("date", "uri", "string ")
 * as matching anything; Ajv refuses such a schema. Dropping those `type`s is json_schemer's
 * reading: a list with an unknown name in it matches anything too.
 */
function asJsonSchemerReadsIt(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(asJsonSchemerReadsIt);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    const names =
      typeof v === 'string' ? [v] : Array.isArray(v) && v.every((t) => typeof t === 'string') ? v : null;
    if (k === 'type' && names && names.some((t) => !JSON_TYPES.has(t))) continue;
    out[k] = asJsonSchemerReadsIt(v);
  }
  return out;
}

function schemaFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? schemaFiles(join(dir, e.name))
      : e.name.endsWith('.json') && e.name !== 'biome.json'
        ? [join(dir, e.name)]
        : [],
  );
}

// json_schemer's defaults, as GitLab's schema_matcher uses them: draft 2020-12, formats asserted,
// every error reported. `strict: false` because GitLab's files carry keywords outside the
// vocabulary (`optional`, field names at the top of merge_request.json) that json_schemer ignores.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
// ajv-formats is CommonJS whose module.exports is the plugin (and .default too): either shape.
type FormatsPlugin = (a: Ajv2020) => Ajv2020;
const formats = addFormatsModule as unknown as FormatsPlugin & { default?: FormatsPlugin };
const addFormats: FormatsPlugin = formats.default ?? formats;
addFormats(ajv);
for (const file of schemaFiles(SCHEMAS)) {
  const id = BASE + relative(SCHEMAS, file).split('\\').join('/');
  const schema = asJsonSchemerReadsIt(JSON.parse(readFileSync(file, 'utf8'))) as Record<string, unknown>;
  ajv.addSchema({ ...schema, $id: id });
}

/** The violations of `body` against GitLab's schema `name` (e.g. "public_api/v4/user/public"). */
function violations(name: string, body: unknown): string[] {
  const validate = ajv.getSchema(`${BASE}${name}.json`);
  if (!validate) throw new Error(`no schema ${name} in test/fixtures/gitlab-schemas`);
  if (validate(body)) return [];
  return (validate.errors ?? []).map(
    (e) => `${e.instancePath || '(root)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
  );
}

/**
 * Fields GitLab's entity exposes today that the stored schema (which forbids extra fields)
 * predates: each must be present, and is set aside before validating. Kept to GitLab's source.
 */
const NEWER_THAN_FIXTURE: Record<string, string[]> = {
  // lib/api/entities/basic_project_details.rb (05f0ebba): topics, readme_url, namespace.
  'public_api/v4/projects': ['topics', 'readme_url', 'namespace'],
  // gitlab-org/gitlab!231325 (webhook signing tokens) added both flags to the hook entity.
  'public_api/v4/project_hook': ['token_present', 'signing_token_present'],
  'public_api/v4/project_hooks': ['token_present', 'signing_token_present'],
  // lib/api/entities/environment.rb (newest stored version): auto_stop_at, description,
  // auto_stop_setting came after the schema (36a59d08) that forbids extra fields.
  'public_api/v4/environment': ['auto_stop_at', 'description', 'auto_stop_setting'],
  'public_api/v4/environments': ['auto_stop_at', 'description', 'auto_stop_setting'],
};

/**
 * An environment's `project` is BasicProjectDetails, which project.json (no extra fields)
 * predates by `topics`, as projects.json does (NEWER_THAN_FIXTURE): required, then set aside.
 */
function withoutNewerProjectFields(body: unknown): unknown {
  const strip = (env: Record<string, any>) => {
    if (!env.project) return env;
    assert.ok('topics' in env.project, 'BasicProjectDetails has topics');
    const { topics: _, ...project } = env.project;
    return { ...env, project };
  };
  return Array.isArray(body) ? body.map(strip) : strip(body as Record<string, any>);
}

function withoutNewerFields(name: string, body: unknown): unknown {
  const newer = NEWER_THAN_FIXTURE[name];
  if (!newer) return body;
  const strip = (item: Record<string, unknown>) => {
    const missing = newer.filter((k) => !(k in item));
    assert.deepEqual(missing, [], `${name}: GitLab's entity has these fields`);
    return Object.fromEntries(Object.entries(item).filter(([k]) => !newer.includes(k)));
  };
  return Array.isArray(body) ? body.map(strip) : strip(body as Record<string, unknown>);
}

function assertMatches(name: string, res: { status: number; body: unknown }, status = 200): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  if (Array.isArray(res.body)) assert.ok(res.body.length > 0, 'a non-empty list, or nothing was checked');
  assert.deepEqual(
    violations(name, withoutNewerFields(name, res.body)),
    [],
    `response does not match ${name}`,
  );
}

/**
 * What API::Entities::MergeRequest adds to MergeRequestBasic (gitlabhq lib/api/entities/
 * merge_request.rb at 28bc811a): lists are MergeRequestBasic, so none of these is in one.
 * (gitlabhq's stored merge_requests.json predates GitLab 13, see SOURCE.md.)
 */
const SINGLE_MR_ONLY = [
  'subscribed',
  'changes_count',
  'latest_build_started_at',
  'latest_build_finished_at',
  'first_deployed_to_production_at',
  'pipeline',
  'head_pipeline',
  'diff_refs',
  'merge_error',
  'rebase_in_progress',
  'diverged_commits_count',
  'first_contribution',
  'user',
];

/** An MR list: each item matches merge_request.json and has no field only the single view has. */
function assertMergeRequestList(res: { status: number; body: any }): void {
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.ok(Array.isArray(res.body) && res.body.length > 0, 'a non-empty list');
  for (const mr of res.body) {
    assert.deepEqual(
      violations('public_api/v4/merge_request', mr),
      [],
      `!${mr.iid} does not match merge_request`,
    );
    assert.deepEqual(
      SINGLE_MR_ONLY.filter((k) => k in mr),
      [],
      `!${mr.iid} in a list carries fields only GET /merge_requests/:iid has`,
    );
  }
}

describe('the validator itself', () => {
  test('a response missing a required field fails, naming it', () => {
    const errors = violations('public_api/v4/metadata', { version: '1', revision: 'x', enterprise: false });
    assert.ok(
      errors.some((e) => e.includes('kas')),
      errors.join('\n'),
    );
  });

  test('formats are asserted (date-time), as json_schemer does by default', () => {
    const note = {
      note: 'x',
      path: null,
      line: null,
      line_type: null,
      author: null,
      created_at: 'yesterday',
    };
    assert.ok(violations('public_api/v4/commit_note', note).some((e) => e.includes('date-time')));
  });

  test('$refs resolve by GitLab’s relative paths (commit_note → user/basic)', () => {
    const note = { note: 'x', path: null, line: null, line_type: null, created_at: '2026-01-01T00:00:00Z' };
    const errors = violations('public_api/v4/commit_note', { ...note, author: { id: 1 } });
    assert.ok(
      errors.some((e) => e.startsWith('/author') && e.includes('username')),
      errors.join('\n'),
    );
  });

  test('an unknown type ("date") matches anything, as in json_schemer', () => {
    const p = violations('public_api/v4/projects', [{ created_at: 42 }]);
    assert.ok(!p.some((e) => e.startsWith('/0/created_at')), p.join('\n'));
  });
});

describe('sandbox responses match GitLab’s schemas', () => {
  let sb: Sandbox;
  const P = `/projects/${encodeURIComponent(OPS)}`;
  let userId: number;
  let mainSha: string;
  let mrSha: string;
  let hookId: number;
  let iid: number;

  const as = (user: string) => ({ token: `${user}-token` });
  const send = (method: string, path: string, user: string, body: unknown) =>
    api(sb, path, {
      method,
      ...as(user),
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  before(async () => {
    sb = await sandboxFixture();
    userId = (await api(sb, '/user', as('developer'))).body.id;
    mainSha = (await api(sb, `${P}/repository/branches/main`, as('operator'))).body.commit.id;
    const commit = await send('POST', `${P}/repository/commits`, 'reviewer', {
      branch: 'schemas',
      start_branch: 'main',
      commit_message: 'Schemas',
      actions: [{ action: 'create', file_path: 'schemas.txt', content: 'x\n' }],
    });
    mrSha = commit.body.id;
    const mr = await send('POST', `${P}/merge_requests`, 'reviewer', {
      source_branch: 'schemas',
      target_branch: 'main',
      title: 'Schemas',
    });
    assert.equal(mr.status, 201, JSON.stringify(mr.body));
    iid = mr.body.iid;
    await send('POST', `${P}/repository/commits/${mainSha}/comments`, 'operator', { note: 'seen' });
    const hook = await send('POST', `${P}/hooks`, 'operator', {
      url: 'http://127.0.0.1:9/hook',
      push_events: true,
    });
    hookId = hook.body.id;
  });
  after(() => sb.close());

  test('GET /metadata matches metadata', async () => {
    assertMatches('public_api/v4/metadata', await api(sb, '/metadata', as('developer')));
  });

  test('GET /user matches user/public', async () => {
    assertMatches('public_api/v4/user/public', await api(sb, '/user', as('developer')));
  });

  test('GET /user as an admin matches user/admin', async () => {
    assertMatches('public_api/v4/user/admin', await api(sb, '/user', as('root')));
  });

  test('GET /users matches user/basics', async () => {
    assertMatches('public_api/v4/user/basics', await api(sb, '/users', as('developer')));
  });

  test('GET /users as an admin matches user/admins', async () => {
    assertMatches('public_api/v4/user/admins', await api(sb, '/users', as('root')));
  });

  test('GET /users/:id matches user/basic', async () => {
    assertMatches('public_api/v4/user/basic', await api(sb, `/users/${userId}`, as('operator')));
  });

  test('GET /users/:id as an admin matches user/admin', async () => {
    const res = await api(sb, `/users/${userId}`, as('root'));
    assertMatches('public_api/v4/user/admin', res);
    // the admin view adds to the public profile; it does not hide it
    const seen = await api(sb, `/users/${userId}`, as('operator'));
    assert.equal(res.body.public_email, seen.body.public_email);
  });

  test('GET /projects?simple=true matches projects', async () => {
    assertMatches('public_api/v4/projects', await api(sb, '/projects?simple=true', as('operator')));
  });

  test('GET /projects/:id/members matches members', async () => {
    assertMatches('public_api/v4/members', await api(sb, `${P}/members`, as('operator')));
  });

  test('GET /projects/:id/members/all matches members', async () => {
    assertMatches('public_api/v4/members', await api(sb, `${P}/members/all`, as('operator')));
  });

  test('GET /groups/:id/members matches members', async () => {
    assertMatches('public_api/v4/members', await api(sb, '/groups/operators/members', as('operator')));
  });

  test('GET /repository/branches matches branches', async () => {
    assertMatches('public_api/v4/branches', await api(sb, `${P}/repository/branches`, as('reviewer')));
  });

  test('GET /repository/branches/:branch matches branch', async () => {
    assertMatches('public_api/v4/branch', await api(sb, `${P}/repository/branches/main`, as('reviewer')));
  });

  test('POST /repository/branches matches branch', async () => {
    const res = await send('POST', `${P}/repository/branches`, 'reviewer', {
      branch: 'schemas-b',
      ref: 'main',
    });
    assertMatches('public_api/v4/branch', res, 201);
  });

  test('GET /repository/commits matches commits', async () => {
    assertMatches(
      'public_api/v4/commits',
      await api(sb, `${P}/repository/commits?ref_name=main`, as('reviewer')),
    );
  });

  test('GET /repository/commits/:sha matches commit/detail', async () => {
    assertMatches(
      'public_api/v4/commit/detail',
      await api(sb, `${P}/repository/commits/${mainSha}`, as('reviewer')),
    );
  });

  test('POST /repository/commits matches commit/detail', async () => {
    const res = await send('POST', `${P}/repository/commits`, 'reviewer', {
      branch: 'schemas-c',
      start_branch: 'main',
      commit_message: 'More',
      actions: [{ action: 'create', file_path: 'more.txt', content: 'y\n' }],
    });
    assertMatches('public_api/v4/commit/detail', res, 201);
  });

  test('GET /repository/merge_base matches commit/basic', async () => {
    const res = await api(sb, `${P}/repository/merge_base?refs[]=main&refs[]=schemas`, as('reviewer'));
    assertMatches('public_api/v4/commit/basic', res);
  });

  test('GET /repository/commits/:sha/comments matches commit_notes', async () => {
    assertMatches(
      'public_api/v4/commit_notes',
      await api(sb, `${P}/repository/commits/${mainSha}/comments`, as('reviewer')),
    );
  });

  test('POST /repository/commits/:sha/comments matches commit_note', async () => {
    const res = await send('POST', `${P}/repository/commits/${mainSha}/comments`, 'reviewer', {
      note: 'again',
    });
    assertMatches('public_api/v4/commit_note', res, 201);
  });

  test('GET /hooks matches project_hooks', async () => {
    assertMatches('public_api/v4/project_hooks', await api(sb, `${P}/hooks`, as('operator')));
  });

  test('GET /hooks/:hook_id matches project_hook', async () => {
    assertMatches('public_api/v4/project_hook', await api(sb, `${P}/hooks/${hookId}`, as('operator')));
  });

  test('POST /hooks matches project_hook', async () => {
    const res = await send('POST', `${P}/hooks`, 'operator', {
      url: 'http://127.0.0.1:9/other',
      note_events: true,
    });
    assertMatches('public_api/v4/project_hook', res, 201);
  });

  test('PUT /hooks/:hook_id matches project_hook', async () => {
    const res = await send('PUT', `${P}/hooks/${hookId}`, 'operator', {
      url: 'http://127.0.0.1:9/hook',
      merge_requests_events: true,
    });
    assertMatches('public_api/v4/project_hook', res);
  });

  test('GET /merge_requests: each item matches merge_request, without the single view’s fields', async () => {
    assertMergeRequestList(await api(sb, `${P}/merge_requests`, as('reviewer')));
  });

  test('GET /repository/commits/:sha/merge_requests: as the MR list', async () => {
    assertMergeRequestList(await api(sb, `${P}/repository/commits/${mrSha}/merge_requests`, as('reviewer')));
  });

  test('GET /merge_requests/:iid matches merge_request', async () => {
    assertMatches('public_api/v4/merge_request', await api(sb, `${P}/merge_requests/${iid}`, as('reviewer')));
  });

  test('POST /merge_requests matches merge_request', async () => {
    const res = await send('POST', `${P}/merge_requests`, 'reviewer', {
      source_branch: 'schemas-c',
      target_branch: 'main',
      title: 'More',
    });
    assertMatches('public_api/v4/merge_request', res, 201);
  });

  test('PUT /merge_requests/:iid matches merge_request', async () => {
    const res = await send('PUT', `${P}/merge_requests/${iid}`, 'reviewer', { description: 'Checked' });
    assertMatches('public_api/v4/merge_request', res);
  });

  test('PUT /merge_requests/:iid/merge matches merge_request', async () => {
    const res = await send('PUT', `${P}/merge_requests/${iid}/merge`, 'operator', {});
    assertMatches('public_api/v4/merge_request', res);
  });

  test('GET /merge_requests/:iid/commits matches commits', async () => {
    assertMatches(
      'public_api/v4/commits',
      await api(sb, `${P}/merge_requests/${iid}/commits`, as('reviewer')),
    );
  });

  // Deployments and environments (no deployments.json exists in gitlabhq: list items are checked
  // against deployment.json one by one).
  const deploy = (status: string) =>
    send('POST', `${P}/deployments`, 'gitops-bot', {
      environment: 'production/helloworld',
      sha: mainSha,
      ref: 'main',
      tag: false,
      status,
    });

  test('POST /deployments matches deployment', async () => {
    assertMatches('public_api/v4/deployment', await deploy('running'), 201);
  });

  test('PUT /deployments/:id matches deployment', async () => {
    const created = await deploy('running');
    const res = await send('PUT', `${P}/deployments/${created.body.id}`, 'gitops-bot', { status: 'success' });
    assertMatches('public_api/v4/deployment', res);
  });

  test('GET /deployments/:id matches deployment', async () => {
    const created = await deploy('running');
    assertMatches(
      'public_api/v4/deployment',
      await api(sb, `${P}/deployments/${created.body.id}`, as('reviewer')),
    );
  });

  test('GET /deployments: each item matches deployment', async () => {
    const res = await api(sb, `${P}/deployments`, as('reviewer'));
    assert.equal(res.status, 200);
    assert.ok(res.body.length > 0);
    for (const d of res.body)
      assert.deepEqual(violations('public_api/v4/deployment', d), [], `deployment ${d.id} does not match`);
  });

  test('GET /environments matches environments', async () => {
    const res = await api(sb, `${P}/environments`, as('reviewer'));
    assertMatches('public_api/v4/environments', { ...res, body: withoutNewerProjectFields(res.body) });
  });

  test('GET /environments/:id (with last_deployment) matches environment', async () => {
    const [env] = (await api(sb, `${P}/environments?name=production%2Fhelloworld`, as('reviewer'))).body;
    const res = await api(sb, `${P}/environments/${env.id}`, as('reviewer'));
    assert.ok(res.body.last_deployment, 'a successful deployment is there to check');
    assertMatches('public_api/v4/environment', res);
  });

  test('POST /environments matches environment', async () => {
    const res = await send('POST', `${P}/environments`, 'reviewer', { name: 'staging/helloworld' });
    assertMatches('public_api/v4/environment', { ...res, body: withoutNewerProjectFields(res.body) }, 201);
  });
});
