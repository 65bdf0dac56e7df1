// Where GitLab is and which token to use: flags, then the environment (GitLab CI's
// CI_SERVER_URL), with errors that say what to set. The CLI and the Action share it.
import { ExitCode, ExitError } from '../model/exit-codes.js';

export interface Connection {
  url: string;
  token: string;
}

/** GitLab URL and token from flags and the environment, with errors that say what to set. */
export function connection(flagUrl: string | undefined, env: NodeJS.ProcessEnv = process.env): Connection {
  const url = flagUrl ?? env.GITLAB_URL ?? env.CI_SERVER_URL;
  if (!url) {
    throw new ExitError(
      'no GitLab URL: pass --gitlab-url, or set GITLAB_URL (CI_SERVER_URL is used in GitLab CI)',
      ExitCode.USAGE,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ExitError(`--gitlab-url '${url}' is not a URL`, ExitCode.USAGE);
  }
  if (parsed.username || parsed.password) {
    throw new ExitError(
      'the GitLab URL carries credentials: put the token in GITOPS_BOT_TOKEN instead',
      ExitCode.USAGE,
    );
  }
  const token = env.GITOPS_BOT_TOKEN || env.GITLAB_TOKEN;
  if (!token) {
    if (env.CI_JOB_TOKEN) {
      throw new ExitError(
        'only CI_JOB_TOKEN is set, and a job token cannot write to another project. Create a project access ' +
          'token in the ops project (Settings > Access tokens: role Developer, scope api) and store it in the app ' +
          'project as a masked CI/CD variable named GITOPS_BOT_TOKEN',
        ExitCode.USAGE,
      );
    }
    throw new ExitError(
      'no token: set GITOPS_BOT_TOKEN (or GITLAB_TOKEN) to a token with the api scope',
      ExitCode.USAGE,
    );
  }
  return { url: url.replace(/\/+$/, ''), token };
}
