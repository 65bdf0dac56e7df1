// `gitops-bot images` and `gitops-bot set-image`: the byte-exact edits on local files.
import type { Command } from 'commander';

export interface SetImageCliOptions {
  image: string;
  tag?: string;
  digest?: string;
  container?: string;
  inPlace?: boolean;
  diff?: boolean;
  followAnchor?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function registerManifestCommands(program: Command): void {
  program
    .command('images')
    .description('list the image references in YAML files (manifests, kustomizations, Helm values)')
    .argument('<file...>', 'YAML files')
    .option('--json', 'print JSON: one object per reference, with file, kind, line, column, ranges')
    .addHelpText(
      'after',
      `
Kinds: container (pod template containers, initContainers, ephemeralContainers),
image (any other image: string), kustomize (kustomization images: entries; a
kustomization is known by its apiVersion, kind or images: list, under any file name),
helm (image: {registry, repository, tag} maps, ingress-nginx's {registry, image, tag,
digest}), flux (# {"$imagepolicy": ...} markers).

Example:
  $ gitops-bot images deployment.yml kustomization.yaml
`,
    )
    .action(async (files: string[], opts: { json?: boolean }) => {
      const { imagesAction } = await import('./manifest-actions.js');
      await imagesAction(files, opts);
    });

  program
    .command('set-image')
    .description("set an image's tag and/or digest, changing only the bytes of those values")
    .argument('<file...>', 'YAML files')
    .requiredOption(
      '--image <repo>',
      'repository to change, without tag (e.g. registry.example.com/root/helloworld)',
    )
    .option('--tag <tag>', 'new tag (e.g. ci-34)')
    .option('--digest <digest>', 'pin a digest too: writes repo:tag@sha256:...')
    .option('--container <name>', 'only the container with this name')
    .option('--in-place', 'rewrite the files (atomically; nothing is written if any file fails)')
    .option('--diff', 'print a unified diff instead of the new content')
    .option('--dry-run', 'with --in-place: report what would change, write nothing')
    .option('--follow-anchor', 'also edit a value whose YAML anchor feeds other values')
    .option('--json', 'print the changes as JSON instead of content')
    .addHelpText(
      'after',
      `
With one FILE and neither --in-place nor --diff, the new content goes to stdout.
A tag-only bump of a reference pinned by digest removes the stale digest (and says so).

Exit codes: 0 changed or already at the target; 2 bad arguments; 3 the image is not
referenced in any FILE; 4 a FILE is not valid YAML; 1 anything else.

Examples:
  $ gitops-bot set-image deployment.yml --image registry.example.com/root/helloworld --tag ci-34 --diff
  $ gitops-bot set-image k8s/*.yml --image nginx --tag 1.27.3 --in-place
  $ gitops-bot set-image values.yaml --image ghcr.io/acme/api --tag 2.0.0 --digest sha256:... > values.new.yaml
`,
    )
    .action(async (files: string[], opts: SetImageCliOptions) => {
      const { setImageAction } = await import('./manifest-actions.js');
      await setImageAction(files, opts);
    });
}
