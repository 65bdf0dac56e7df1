// `.gitops-bot.yml`: the approval policy of an ops repository, read from the target
// branch. The schema is the single source of truth for validation and for the published
// JSON Schema (`gitops-bot schema policy`), so editors complete what the bot accepts.
import { parseDocument } from 'yaml';
import * as z from 'zod';

/** Where an ops repository keeps its policy (read from its protected default branch). */
export const POLICY_FILE = '.gitops-bot.yml';

const ACCESS_LEVELS = {
  guest: 10,
  planner: 15,
  reporter: 20,
  developer: 30,
  maintainer: 40,
  owner: 50,
} as const;
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const TIME = /^([01]\d|2[0-3]):[0-5]\d$|^24:00$/;
const DURATION = /^[1-9]\d{0,5}(s|m|h)$/;
const DURATION_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

const accessLevel = z
  .union([
    z.enum(Object.keys(ACCESS_LEVELS) as [keyof typeof ACCESS_LEVELS]),
    z.number().int().min(0).max(60),
  ])
  .describe(
    'Lowest role that may approve: a name (developer, maintainer, owner) or a GitLab access level (30, 40, 50).',
  );

const freezeWindow = z
  .object({
    days: z.array(z.enum(DAYS)).min(1).describe('Weekdays of the window.'),
    from: z.string().regex(TIME, 'expected HH:MM').default('00:00').describe('Start time, HH:MM.'),
    to: z
      .string()
      .regex(TIME, 'expected HH:MM')
      .default('24:00')
      .describe('End time, HH:MM (24:00 for end of day).'),
    timezone: z
      .string()
      .refine(isTimeZone, 'expected an IANA time zone such as Europe/Madrid')
      .default('UTC')
      .describe('IANA time zone, e.g. Europe/Madrid.'),
    reason: z.string().optional().describe('Shown in the verdict.'),
  })
  .strict()
  // A window is within one day: 22:00-06:00 would never be active, so it is refused rather
  // than silently ignored.
  .refine((w) => minutesOf(w.from) < minutesOf(w.to), {
    message: 'expected from before to (split a window over midnight in two: 22:00-24:00 and 00:00-06:00)',
    path: ['to'],
  });

function minutesOf(time: string): number {
  const [h, m] = time.split(':').map(Number);
  return h * 60 + m;
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const approvalRules = z
  .object({
    required: z.number().int().min(0).max(20).default(1).describe('Approvals needed.'),
    users: z.array(z.string().min(1)).optional().describe('Only these usernames count.'),
    groups: z
      .array(z.string().min(1))
      .optional()
      .describe('Only members of these groups (full path) count; with users, either counts.'),
    min_access_level: accessLevel.default('maintainer'),
    count_author: z.boolean().default(false).describe("Count the MR author's approval."),
    count_committers: z
      .boolean()
      .default(false)
      .describe('Count approvals of people who pushed commits to the MR.'),
    count_bots: z
      .boolean()
      .default(false)
      .describe('Count approvals of bot users (gitops-bot itself never counts).'),
    count_before_push: z
      .boolean()
      .default(false)
      .describe("Count approvals given before the MR's latest push."),
  })
  .strict();

const approvals = approvalRules.default({
  required: 1,
  min_access_level: 'maintainer',
  count_author: false,
  count_committers: false,
  count_bots: false,
  count_before_push: false,
});

const rollbackRules = z
  .object({
    // no default here: without it a rollback needs what the environment's approvals say
    approvals: approvalRules.optional().describe("Approvals a rollback needs (default: the environment's)."),
    merge: z
      .enum(['manual', 'bot'])
      .optional()
      .describe("bot: gitops-bot merges a rollback once its rules pass (default: the environment's merge)."),
    freeze: z
      .array(freezeWindow)
      .default([])
      .describe('Freeze windows for rollbacks (default: none; a rollback restores what ran before).'),
  })
  .strict()
  .describe(
    "Rules for gitops-bot's rollback merge requests (`gitops-bot rollback`, on_degraded: rollback): they apply only when GitLab's Deployments show the tag was healthy in this environment.",
  );

const environment = z
  .object({
    name: z.string().min(1).describe('Environment name, shown in the verdict.'),
    match: z
      .object({
        target_branches: z
          .array(z.string().min(1))
          .optional()
          .describe('MR target branches this environment covers.'),
        files: z
          .array(z.string().min(1))
          .optional()
          .describe('Globs: the MR changes a file matching one of them.'),
      })
      .strict()
      .default({})
      .describe('Which merge requests this environment governs; the first matching environment wins.'),
    approvals,
    escalation: z
      .array(
        z
          .object({
            when: z.enum(['major', 'minor', 'patch']).describe('Kind of semver bump this applies to.'),
            extra_approvals: z
              .number()
              .int()
              .min(1)
              .max(10)
              .describe('Approvals needed on top of approvals.required.'),
          })
          .strict(),
      )
      .default([]),
    freeze: z
      .array(freezeWindow)
      .default([])
      .describe('Windows in which nothing may be approved for deployment.'),
    merge: z
      .enum(['manual', 'bot'])
      .default('manual')
      .describe('bot: gitops-bot merges once the rules pass.'),
    deploy_ref: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'expected a branch name')
      .optional()
      .describe(
        'Strict mode: the branch the in-cluster agent tracks; gitops-bot moves it after a merge that passed.',
      ),
    agent: z
      .union([
        z
          .object({
            argocd: z
              .string()
              .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'expected an Argo CD application name')
              .describe('The Argo CD Application that deploys this environment.'),
          })
          .strict(),
        z
          .object({
            flux: z
              .string()
              .regex(
                /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
                'expected <namespace>/<name> of a Flux Kustomization',
              )
              .describe('The Flux Kustomization that deploys this environment, as <namespace>/<name>.'),
          })
          .strict(),
      ])
      .optional()
      .describe(
        'The in-cluster agent that deploys this environment: gitops-bot reports what it did as GitLab Deployments, a commit status and comments.',
      ),
    deploy_timeout: z
      .string()
      .regex(DURATION, 'expected a duration such as 90s, 10m or 1h')
      .default('10m')
      .describe(
        'How long after a merge or deploy_ref move the agent has to report Healthy before the deployment failed.',
      ),
    rollback: rollbackRules.optional(),
    on_degraded: z
      .enum(['alert', 'rollback'])
      .default('alert')
      .describe(
        'What gitops-bot does when the agent reports Degraded, a failed sync or a timeout for a revision it deployed: alert (comment and metric), or rollback (also open the rollback MR, and merge it when the rollback rules pass without people).',
      ),
  })
  .strict();

const promotionStep = z
  .object({
    from: z.string().min(1).describe('The environment a tag must be healthy in first (`staging`).'),
    to: z.string().min(1).describe('The environment it is promoted to next (`production`).'),
    when: z.literal('healthy').default('healthy').describe('healthy: Synced and Healthy in `from`.'),
    soak: z
      .string()
      .regex(DURATION, 'expected a duration such as 90s, 10m or 1h')
      .optional()
      .describe('How long the tag must stay healthy in `from` before the MR to `to` opens.'),
    assignees: z
      .array(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a GitLab username'))
      .default([])
      .describe('Usernames the MR to `to` is assigned to (the operator).'),
    reviewers: z
      .array(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a GitLab username'))
      .default([])
      .describe('Usernames asked to review the MR to `to`.'),
  })
  .strict();

export const policySchema = z
  .object({
    version: z.literal(1).describe('Policy format version.'),
    environments: z.array(environment).min(1),
    promotion: z
      .array(promotionStep)
      .default([])
      .describe('Environment chains: gitops-bot opens the MR to `to` once a tag has been healthy in `from`.'),
  })
  .strict()
  .superRefine((p, ctx) => {
    const names = new Set(p.environments.map((e) => e.name));
    const fedBy = new Map<string, string>();
    p.promotion.forEach((step, i) => {
      for (const key of ['from', 'to'] as const)
        if (!names.has(step[key]))
          ctx.addIssue({
            code: 'custom',
            path: ['promotion', i, key],
            message: `no environment named '${step[key]}' (environments: ${[...names].join(', ')})`,
          });
      if (step.from === step.to)
        ctx.addIssue({
          code: 'custom',
          path: ['promotion', i, 'to'],
          message: 'expected another environment than from',
        });
      if (fedBy.has(step.to))
        ctx.addIssue({
          code: 'custom',
          path: ['promotion', i, 'to'],
          message: `${step.to} is fed from ${fedBy.get(step.to)} already (one from per environment)`,
        });
      fedBy.set(step.to, step.from);
    });
    // a chain that comes back to where it started would promote in a circle
    for (const start of fedBy.keys()) {
      const seen = new Set<string>([start]);
      let at = fedBy.get(start);
      while (at !== undefined) {
        if (seen.has(at)) {
          ctx.addIssue({
            code: 'custom',
            path: ['promotion'],
            message: `the chain through ${start} is a cycle`,
          });
          return;
        }
        seen.add(at);
        at = fedBy.get(at);
      }
    }
  });

export type Policy = z.infer<typeof policySchema>;
export type Environment = Policy['environments'][number];
export type FreezeWindow = z.infer<typeof freezeWindow>;
export type PromotionStep = Policy['promotion'][number];
export type RollbackRules = NonNullable<Environment['rollback']>;

/** With no policy file: one approval from a Maintainer of the ops project, author excluded. */
export const DEFAULT_POLICY: Policy = policySchema.parse({ version: 1, environments: [{ name: 'default' }] });

/** A duration (`deploy_timeout`, `soak`) in milliseconds (the schema admits only `<n>s`, `<n>m`, `<n>h`). */
export function durationMs(text: string, field = 'deploy_timeout'): number {
  const m = DURATION.exec(text);
  if (!m) throw new PolicyError(`${field}: expected a duration such as 90s, 10m or 1h, got ${text}`);
  return Number.parseInt(text, 10) * DURATION_MS[m[1] as keyof typeof DURATION_MS];
}

/** The agent application of an environment as one key: `argocd:<name>` or `flux:<ns>/<name>`. */
export function agentKey(env: Environment): string | null {
  if (!env.agent) return null;
  return 'argocd' in env.agent ? `argocd:${env.agent.argocd}` : `flux:${env.agent.flux}`;
}

export function accessLevelNumber(level: Environment['approvals']['min_access_level']): number {
  return typeof level === 'number' ? level : ACCESS_LEVELS[level];
}

export class PolicyError extends Error {
  override name = 'PolicyError';
}

/** Parses and validates a policy file; the error names the file, the field and the rule. */
export function parsePolicy(text: string, file = '.gitops-bot.yml'): Policy {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length)
    throw new PolicyError(`${file}: not valid YAML: ${doc.errors[0].message.split('\n')[0]}`);
  const result = policySchema.safeParse(doc.toJS({ maxAliasCount: 100 }));
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue.path.length
      ? issue.path
          .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
          .join('')
          .slice(1)
      : '(top level)';
    throw new PolicyError(`${file}: ${field.replace(/\.\[/g, '[')}: ${issue.message}`);
  }
  return result.data;
}

export function policyJsonSchema(): unknown {
  return {
    ...z.toJSONSchema(policySchema, { io: 'input' }),
    $id: 'https://gitops-bot.dev/schema/policy.json',
    title: 'gitops-bot approval policy (.gitops-bot.yml)',
  };
}
