// Where the rules come from. An MR's author picks its target branch and may create it, so
// rules read "from the target branch" are the author's to write. The rules that govern
// every MR come from places only Maintainers control: the ops project's protected default
// branch, as it stands at the deploy ref in strict mode (a change that has not reached it
// through approved history is not in force yet), or a policy file given to gitops-bot.

import type { Trust } from '../policy/evaluate.js';
import { type Policy, PolicyError, parsePolicy } from '../policy/schema.js';
import type { GateForge } from './facts.js';

export { POLICY_FILE } from '../policy/schema.js';

import { POLICY_FILE } from '../policy/schema.js';

export type ParsedPolicy = Policy | { error: string } | null;

export interface RulesInForce {
  /** null: no policy file, the default rules apply */
  policy: ParsedPolicy;
  /** the policy file's text in force (to tell a copy elsewhere from a different one) */
  text: string | null;
  defaultBranch: string;
  defaultProtected: boolean;
  /** where the rules were read, for the verdict */
  source: string;
  notes: string[];
}

export function parse(text: string | null, where = POLICY_FILE): ParsedPolicy {
  if (text === null) return null;
  try {
    return parsePolicy(text, where);
  } catch (e) {
    if (e instanceof PolicyError) return { error: e.message };
    throw e;
  }
}

/** The deploy refs the rules map to each target branch (strict mode). */
export function deployRefs(
  policy: ParsedPolicy,
  defaultBranch: string,
): Array<{ branch: string; ref: string }> {
  const envs = policy && !('error' in policy) ? policy.environments : [];
  const out: Array<{ branch: string; ref: string }> = [];
  for (const e of envs) {
    if (!e.deploy_ref) continue;
    for (const branch of e.match.target_branches ?? [defaultBranch])
      if (!out.some((x) => x.branch === branch)) out.push({ branch, ref: e.deploy_ref });
  }
  return out;
}

/**
 * The rules in force for `project`. Requests: the default branch's name, its protection,
 * the policy on it; in strict mode one more, the policy at the deploy ref.
 */
export async function rulesInForce(
  gl: GateForge,
  project: string,
  given?: { policy: Policy | null; source: string },
  /** the default branch and its policy, when the caller read them already */
  read?: { defaultBranch: string; headText: string | null },
): Promise<RulesInForce> {
  const defaultBranch = read?.defaultBranch ?? (await gl.projectDefaultBranch(project));
  if (given) {
    const b = await gl.branch(project, defaultBranch);
    return {
      policy: given.policy,
      text: null,
      defaultBranch,
      defaultProtected: !!b?.protected,
      source: given.source,
      notes: [],
    };
  }
  const [b, headText] = await Promise.all([
    gl.branch(project, defaultBranch),
    read ? read.headText : gl.rawFile(project, POLICY_FILE, defaultBranch),
  ]);
  const atHead = parse(headText);
  const base = {
    defaultBranch,
    defaultProtected: !!b?.protected,
    notes: [] as string[],
  };
  const deployRef = deployRefs(atHead, defaultBranch).find((d) => d.branch === defaultBranch)?.ref;
  if (!deployRef) return { ...base, policy: atHead, text: headText, source: defaultBranch };
  const deployedText = await gl.rawFile(project, POLICY_FILE, deployRef);
  if (deployedText === headText) return { ...base, policy: atHead, text: headText, source: defaultBranch };
  if (deployedText === null && !(await gl.branch(project, deployRef))) {
    // Strict mode not started yet: nothing deployed from deployRef to hold the rules.
    return { ...base, policy: atHead, text: headText, source: defaultBranch };
  }
  return {
    ...base,
    policy: parse(deployedText),
    text: deployedText,
    source: `${defaultBranch} as deployed at ${deployRef}`,
    notes: [
      `The rules on ${defaultBranch} were changed by commits that have not reached ${deployRef} through approved history; the rules at ${deployRef} apply until they do.`,
    ],
  };
}

/** The trust facts for an MR into `target`, given the rules in force. */
export async function trustFor(
  gl: GateForge,
  project: string,
  rules: RulesInForce,
  target: string,
): Promise<Trust> {
  const notes = [...rules.notes];
  if (target === rules.defaultBranch)
    return { ...rulesTrust(rules), targetProtected: rules.defaultProtected, notes };
  const [branch, elsewhere] = await Promise.all([
    gl.branch(project, target),
    gl.rawFile(project, POLICY_FILE, target).catch(() => null),
  ]);
  if (elsewhere !== null && elsewhere !== rules.text)
    notes.push(
      `The ${POLICY_FILE} on ${target} is ignored: gitops-bot reads its rules only from ${rules.defaultBranch}, the protected default branch.`,
    );
  return { ...rulesTrust(rules), targetProtected: !!branch?.protected, notes };
}

function rulesTrust(rules: RulesInForce): Omit<Trust, 'targetProtected' | 'notes'> {
  return {
    source: rules.source,
    defaultBranch: rules.defaultBranch,
    defaultProtected: rules.defaultProtected,
  };
}
