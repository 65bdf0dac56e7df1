// `gitops-bot retag`: more tags for an image that is already in the registry, without
// pulling or pushing layers: the manifest's bytes are put under each new tag, so the digest
// stays. The build template uses it for extra tags; operators promote one digest across
// environments with it (`--from ci-34 --to prod`).
import type { Command } from 'commander';
import { CliError, ExitCode } from './errors.js';

interface RetagOptions {
  image: string;
  from: string;
  to: string[];
  json?: boolean;
}

export function registerRetag(program: Command): void {
  program
    .command('retag')
    .description('add tags to an image already in the registry (same digest, no layers moved)')
    .requiredOption(
      '--image <repo>',
      'image repository without tag, e.g. registry.example.com/root/helloworld',
    )
    .requiredOption('--from <tag-or-digest>', 'the tag (or sha256 digest) to copy')
    .requiredOption(
      '--to <tag...>',
      'the new tag(s) (repeat, or comma-separate)',
      (v: string, prev: string[] = []) => [
        ...prev,
        ...v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ],
    )
    .option('--json', 'print one JSON object on one line: {"image","digest","tags"}')
    .addHelpText(
      'after',
      `
Environment:
  GITOPS_BOT_REGISTRY_USER, GITOPS_BOT_REGISTRY_PASSWORD   registry credentials
      (GITOPS_BOT_REGISTRY limits them to one host); in GitLab CI, CI_REGISTRY_USER and
      CI_REGISTRY_PASSWORD are used for CI_REGISTRY. GitLab's registry needs the Developer
      role to push a tag.

Output: one line per tag on stdout, "IMAGE:TAG DIGEST"; progress on stderr.
Exit codes: 0 tagged; 2 bad arguments; 7 --from does not exist, or the registry refused.

Example (promote the digest built as ci-34 to the prod tag):
  $ gitops-bot retag --image registry.example.com/root/helloworld --from ci-34 --to prod
`,
    )
    .action(async (opts: RetagOptions) => {
      const [{ imageName, RegistryClient, RegistryError, credentialsFromEnv }, ref] = await Promise.all([
        import('../registry/client.js'),
        import('../manifests/reference.js'),
      ]);
      const rp = ref.repositoryProblem(opts.image);
      if (rp) throw new CliError(`--image: ${rp}`, ExitCode.USAGE);
      const fromProblem = opts.from.includes(':') ? ref.digestProblem(opts.from) : ref.tagProblem(opts.from);
      if (fromProblem) throw new CliError(`--from: ${fromProblem}`, ExitCode.USAGE);
      for (const t of opts.to) {
        const p = ref.tagProblem(t);
        if (p) throw new CliError(`--to: ${p}`, ExitCode.USAGE);
      }
      const registry = new RegistryClient({ credentials: credentialsFromEnv() });
      const name = imageName(opts.image);
      let digest = '';
      try {
        for (const t of opts.to) {
          if (!opts.json) process.stderr.write(`gitops-bot: tagging ${opts.image}:${opts.from} as ${t}\n`);
          digest = await registry.tag(name, opts.from, t);
          if (!opts.json) process.stdout.write(`${opts.image}:${t} ${digest}\n`);
        }
      } catch (e) {
        if (e instanceof RegistryError) throw new CliError(e.message, ExitCode.IMAGE);
        throw e;
      }
      if (opts.json)
        process.stdout.write(`${JSON.stringify({ image: opts.image, digest, tags: opts.to })}\n`);
    });
}
