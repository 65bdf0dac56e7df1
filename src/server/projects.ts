// The projects `serve` manages, as GitLab knows them. A delivery names its project twice
// (`project.id` and `project.path_with_namespace`) and nothing makes the two agree, so the
// bot resolves each --project to its numeric id and canonical path once, at startup, through
// the API; deliveries are matched by id only, and jobs act on the path resolved here.
import { GitLabError, GitLabGate } from '../gitlab/client.js';

export interface ManagedProject {
  id: number;
  /** path_with_namespace, as GitLab spells it */
  path: string;
}

/** The one extra call serve needs: a project's id and canonical path. */
export class ProjectDirectory extends GitLabGate {
  async identity(project: string | number): Promise<ManagedProject> {
    const p = (await this.call(`read project ${project}`, () => this.api.Projects.show(project))) as {
      id: number;
      path_with_namespace: string;
    };
    return { id: Number(p.id), path: String(p.path_with_namespace) };
  }
}

export class UnknownProjectError extends Error {
  override name = 'UnknownProjectError';
  constructor(
    readonly project: string,
    readonly status: number,
    why: string,
  ) {
    super(why);
  }
}

/** Each of `projects` (paths or ids) as id and canonical path; duplicates dropped. */
export async function resolveProjects(
  directory: ProjectDirectory,
  projects: Array<string | ManagedProject>,
): Promise<ManagedProject[]> {
  const out = new Map<number, ManagedProject>();
  for (const p of projects) {
    if (typeof p !== 'string') {
      out.set(p.id, p);
      continue;
    }
    try {
      const found = await directory.identity(p);
      out.set(found.id, found);
    } catch (e) {
      if (e instanceof GitLabError && e.status === 404)
        throw new UnknownProjectError(p, 404, `--project ${p}: no such project, or the token cannot read it`);
      throw e;
    }
  }
  return [...out.values()];
}
