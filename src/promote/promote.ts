// promote: propose an image bump as a merge request in the ops repository, idempotently.
//
// Each attempt observes what GitLab holds (observe.ts), decides what to do with it (pure,
// decide.ts) and applies the writes that implies (apply.ts); a write that shows someone
// else moved first ends the attempt, and the next one observes again. A dry run observes
// and decides, and applies nothing.
//
// Request budget (one file): a new promotion reads the file, lists open MRs, resolves the
// assignees, commits, opens the MR, comments and checks the comment is the only one (7); a
// run with nothing to do reads the file and lists MRs (2); an update reads, lists, commits,
// finds the comment, edits it and edits the MR (6 API requests), and moves the branch with
// git's receive-pack protocol (2 git HTTP requests, no objects sent). Races: GitLab's Commits
// API cannot compare-and-swap a forced branch reset, so an update commits to a scratch
// branch and moves the MR branch with one receive-pack update whose old id is the head we
// read (see GitLab.writeBranch, gitlab/git-push.ts): a run that read an older head loses
// the swap, reads again and decides again. The bot's commit message carries
// the promotion record and the branch head is the truth; the MR description and the comment
// are projections that any run checks (the `sha` in GitLab's answers) and rebuilds when out
// of step.

import { GitLabError } from '../gitlab/client.js';
import { digestProblem, repositoryProblem, tagProblem } from '../manifests/reference.js';
import { botBranch } from '../model/markers.js';
import type { ImageFacts } from '../model/record.js';
import { selectEnvironment } from '../policy/evaluate.js';
import { POLICY_FILE } from '../policy/schema.js';
import { type RegistryClient, RegistryError } from '../registry/client.js';
import { type Applied, type ApplyContext, apply } from './apply.js';
import { type Decision, decide } from './decide.js';
import { describeChanges, inspectNew } from './image-facts.js';
import { type Observation, observe } from './observe.js';
import { type Rejection, rejections } from './rejections.js';
import { readPolicy, resolveTargets } from './targets.js';
import {
  PromoteError,
  PromoteExit,
  type PromoteForge,
  type PromoteRequest,
  type PromoteResult,
  type Scope,
} from './types.js';

export { MAX_MANIFEST_BYTES } from './observe.js';
export {
  type PromoteAction,
  PromoteError,
  PromoteExit,
  type PromoteRequest,
  type PromoteResult,
} from './types.js';

const MAX_ATTEMPTS = 6;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Checks everything that can be checked before talking to GitLab; throws PromoteError(USAGE). */
export function validateRequest(req: PromoteRequest): void {
  const fail = (m: string) => {
    throw new PromoteError(m, PromoteExit.USAGE);
  };
  if (!req.project) fail('--project is required: the ops project, e.g. root/helloworld-ops');
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$|^\d+$/.test(req.project)) {
    fail(`--project '${req.project}' is not a project path (group/name) or id`);
  }
  if (!req.files.length && !req.env)
    fail(
      '--file is required (the manifest(s) to edit in the ops project), or --env naming an environment of the policy that maps it to files',
    );
  for (const f of req.files) {
    if (
      f.startsWith('/') ||
      f.includes('\\') ||
      f.split('/').some((s) => s === '..' || s === '' || s === '.')
    ) {
      fail(`--file '${f}' must be a relative path inside the ops repository (no '..', no leading '/')`);
    }
  }
  if (!req.image) fail('--image is required: the repository, without tag');
  const rp = repositoryProblem(req.image);
  if (rp) fail(`--image: ${rp}`);
  if (req.tag === undefined && req.digest === undefined) fail('--tag is required (or --digest)');
  if (req.tag !== undefined) {
    const p = tagProblem(req.tag);
    if (p) fail(`--tag: ${p}`);
  }
  if (req.digest !== undefined) {
    const p = digestProblem(req.digest);
    if (p) fail(`--digest: ${p}`);
  }
  for (const [flag, v] of [
    ['--env', req.env],
    ['--app', req.app],
  ] as const) {
    if (v !== undefined && !NAME.test(v))
      fail(`${flag} '${v}' must be 1-63 of [A-Za-z0-9._-], starting with a letter or digit`);
  }
  for (const u of [...(req.assignees ?? []), ...(req.reviewers ?? [])]) {
    if (!/^[A-Za-z0-9_.-]+$/.test(u)) fail(`'${u}' is not a GitLab username`);
  }
  for (const l of req.labels ?? [])
    if (!l || l.includes(',')) fail(`label '${l}' is empty or contains a comma`);
}

export function defaultApp(image: string): string {
  return image
    .split('/')
    .pop()!
    .replace(/[^A-Za-z0-9._-]/g, '-');
}

export interface PromoteDeps {
  gitlab: PromoteForge;
  /** the image registry; without it nothing is verified and the changes are not listed */
  registry?: RegistryClient;
  progress?: (line: string) => void;
}

/** One promotion, retried from fresh reads when GitLab shows that someone else moved first. */
export async function promote(req: PromoteRequest, deps: PromoteDeps): Promise<PromoteResult> {
  validateRequest(req);
  const say = deps.progress ?? (() => {});
  try {
    return await run(req, deps.gitlab, say, deps.registry);
  } catch (e) {
    if (e instanceof GitLabError) throw explain(e, req);
    if (e instanceof RegistryError) throw new PromoteError(e.message, PromoteExit.IMAGE);
    throw e;
  }
}

async function run(
  asked: PromoteRequest,
  gl: PromoteForge,
  say: (l: string) => void,
  registry: RegistryClient | undefined,
): Promise<PromoteResult> {
  let req = asked;
  const image = { image: req.image, tag: req.tag, digest: req.digest };
  // Without --file, the policy's environment names the files (and the branch): targets.ts.
  if (!req.files.length) {
    const t = await resolveTargets(gl, req.project, {
      env: req.env,
      image: req.image,
      targetBranch: req.targetBranch,
    });
    say(`${req.env} in ${POLICY_FILE}: ${t.files.join(', ')} on ${t.targetBranch}`);
    req = { ...req, files: t.files, targetBranch: t.targetBranch };
  }
  // The registry and GitLab are asked at the same time: the answer of the one is not needed
  // to ask the other, and a registry round trip is often the slowest request of a promotion.
  // A refusal by the registry check still ends the run before anything is decided or written.
  const checking = checkImage(req, registry, say, image);
  checking.catch(() => {}); // awaited below; meanwhile its failure is not unhandled
  const target = req.targetBranch ?? (await gl.projectDefaultBranch(req.project));
  const app = req.app ?? defaultApp(req.image);
  const env = req.env ?? (await policyEnvironment(gl, req, target)) ?? target;
  const scope: Scope = { project: req.project, target, app, env, branch: botBranch(env, app), image };
  let facts: Promise<ImageFacts | undefined> | undefined;
  const ctx: ApplyContext = {
    gl,
    req,
    scope,
    say,
    facts: (fromTag) => {
      facts ??= checking.then((checked) => registryFacts({ gl, req, registry, checked, fromTag }));
      return facts;
    },
  };
  // --pin-digest edits in the digest the registry answers, and observe plans the edits.
  if (req.pinDigest) await checking;
  let knownHead: { head: string | null } | undefined;
  let rejected: Rejection[] | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    if (attempt > 1)
      say(`someone else changed ${scope.branch} or ${target} meanwhile; reading again (attempt ${attempt})`);
    const [obs, checked] = await Promise.all([observe(gl, { req, scope, knownHead, say }), checking]);
    let decision = decide(obs, req, rejected);
    // The tags rolled back from here are read once, when something is to be written.
    if (
      !rejected &&
      !req.allowRejected &&
      !req.rollback &&
      decision.writes.some((w) => w.kind === 'commit')
    ) {
      rejected = rejections(await gl.mergedMergeRequests(req.project, scope.branch));
      decision = decide(obs, req, rejected);
    }
    say(decision.say);
    const applied: Applied = req.dryRun ? { kind: 'done' } : await apply(ctx, obs, decision);
    if (applied.kind === 'done') return result({ gl, obs, decision, applied, checked });
    // A lost swap tells where the branch is now; a file changed on the target tells nothing
    // about it; after our own commit, the MR shows the branch again.
    if (applied.why === 'branch-moved') knownHead = { head: applied.head };
    else if (applied.why === 'overtaken') knownHead = undefined;
  }
  throw new PromoteError(
    `${scope.branch} kept changing under us; gave up after ${MAX_ATTEMPTS} attempts (another promotion of ${app} to ${env} is running?)`,
    PromoteExit.FAILURE,
  );
}

/**
 * The name of the policy environment that governs `target` and the files, so that promote,
 * rollback, the feedback and the chains all name the environment alike (its branch, its
 * rejected tags, its Deployments `<env>/<app>`). Null without a policy, or when none matches.
 */
async function policyEnvironment(
  gl: PromoteForge,
  req: PromoteRequest,
  target: string,
): Promise<string | null> {
  const defaultBranch = req.targetBranch ? await gl.projectDefaultBranch(req.project) : target;
  // an invalid policy is the gate's to report; promote names the environment after the branch then
  const policy = await readPolicy(gl, req.project, defaultBranch).catch((e) => {
    if (e instanceof PromoteError) return null;
    throw e;
  });
  return policy ? (selectEnvironment(policy, target, req.files, defaultBranch)?.name ?? null) : null;
}

type Checked = Awaited<ReturnType<typeof inspectNew>> | null;

/** Asks the registry for the tag (unless told not to); pins the digest into `image` for --pin-digest. */
async function checkImage(
  req: PromoteRequest,
  registry: RegistryClient | undefined,
  say: (l: string) => void,
  image: Scope['image'],
): Promise<Checked> {
  const reference = req.tag ?? req.digest ?? '';
  if (req.pinDigest && (!registry || req.verifyImage === false))
    throw new PromoteError(
      '--pin-digest asks the registry for the digest: it cannot go with --no-verify-image',
      PromoteExit.USAGE,
    );
  if (!registry || req.verifyImage === false) return null;
  say(`checking ${req.image}:${reference} in the registry`);
  const checked = await inspectNew(
    registry,
    req.image,
    reference,
    req.pinDigest ? true : (req.verifyImage ?? 'auto'),
  );
  if ('unverified' in checked) say(`not verified: ${checked.unverified}`);
  else say(`${req.image}:${reference} is ${checked.info.digest}`);
  if (req.pinDigest && 'info' in checked) {
    if (req.digest && req.digest !== checked.info.digest)
      throw new PromoteError(
        `--digest ${req.digest} is not what ${req.image}:${reference} resolves to (${checked.info.digest})`,
        PromoteExit.IMAGE,
      );
    image.digest = checked.info.digest;
  }
  return checked;
}

/** What the record says about the images: asked once, when something is to be written. */
async function registryFacts(o: {
  gl: PromoteForge;
  req: PromoteRequest;
  registry: RegistryClient | undefined;
  checked: Checked;
  fromTag: string | undefined;
}): Promise<ImageFacts | undefined> {
  if (!o.checked) return undefined;
  if (!('info' in o.checked)) return { unverified: o.checked.unverified };
  return describeChanges({
    registry: o.registry!,
    gitlab: o.gl,
    image: o.req.image,
    newInfo: o.checked.info,
    fromTag: o.fromTag,
    source: o.req.source ?? {},
  });
}

function result(o: {
  gl: PromoteForge;
  obs: Observation;
  decision: Decision;
  applied: Extract<Applied, { kind: 'done' }>;
  checked: Checked;
}): PromoteResult {
  const { obs, decision: d, checked } = o;
  const image = checked
    ? 'info' in checked
      ? { image: { digest: checked.info.digest, verified: true } }
      : { image: { verified: false, note: checked.unverified } }
    : {};
  return {
    action: d.action,
    reason: d.reason,
    mr: o.applied.mr ?? (obs.mr ? { iid: obs.mr.iid, url: obs.mr.webUrl } : null),
    branch: obs.scope.branch,
    commit: o.applied.commit ?? d.commit ?? null,
    changes: obs.plan.diffs.length ? obs.plan.changes : [],
    requests: o.gl.requests,
    ...image,
    ...(d.action === 'would-create' || d.action === 'would-update' ? { dryRun: true } : {}),
  };
}

/** GitLab's refusals, in words that say what to fix (promote's, and rollback's reads). */
export function explain(e: GitLabError, req: Pick<PromoteRequest, 'project'>): PromoteError {
  if (e.status === 401) {
    return new PromoteError(
      `GitLab rejected the token (401 Unauthorized): check GITOPS_BOT_TOKEN; it may be expired or revoked`,
      PromoteExit.AUTH,
    );
  }
  if (e.status === 403) {
    return new PromoteError(
      `the token lacks write access to ${req.project} (${e.message}): it needs the Developer role there ` +
        '(to push a branch and open a merge request) with the api scope',
      PromoteExit.AUTH,
    );
  }
  if (e.status === 404 && /Project Not Found/i.test(e.gitlabMessage)) {
    return new PromoteError(
      `project ${req.project} not found, or the token cannot see it (it needs the Developer role there)`,
      PromoteExit.AUTH,
    );
  }
  return new PromoteError(e.message, PromoteExit.FAILURE);
}
