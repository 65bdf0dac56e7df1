// The hidden first lines that mark gitops-bot's sticky comments. The writers (promote, the
// gate) and the readers (feedback, `gitops-bot status`) must agree byte for byte, so each
// marker is written down once, here. A marker alone proves nothing (anyone can type it): the
// readers also check that the bot wrote the note.
export const DIFF_MARKER = '<!-- gitops-bot:diff -->';
export const VERDICT_MARKER = '<!-- gitops-bot:verdict -->';
/** The note a rollback leaves on the promotion MR it replaced (one per replaced tag). */
export const replacedMarker = (tag: string) => `<!-- gitops-bot:replaced ${tag} -->`;
/** The commit status the feedback loop writes on a deployed commit. */
export const DEPLOY_STATUS_NAME = 'gitops-bot/deploy';
/** The GitLab environment of an app in a policy environment: `production/helloworld`. */
export const gitlabEnvironment = (env: string, app: string) => `${env}/${app}`;
/** gitops-bot's branch for an app in an environment: one MR per app and environment. */
export const botBranch = (env: string, app: string) => `gitops-bot/${env}/${app}`;
