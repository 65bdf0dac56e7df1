// The programs the sandbox runs only when they are installed (kubectl for Argo CD's
// kustomize, Debian's docker-registry): it looks for them as a shell would.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Whether `command` is an executable file in one of PATH's directories. */
export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
