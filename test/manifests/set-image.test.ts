// Table-driven tests for the byte-exact edits: each case gives input text, options and
// the exact expected output text (or error).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  findImages,
  InvalidReferenceError,
  NotReferencedError,
  normalizeRepository,
  SharedAnchorError,
  setImage,
  YamlSyntaxError,
} from '../../src/manifests/index.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const DIGEST2 = `sha256:${'b'.repeat(64)}`;

interface Case {
  name: string;
  input: string;
  image: string;
  tag?: string;
  digest?: string;
  container?: string;
  followAnchor?: boolean;
  path?: string;
  expected: string;
  note?: RegExp;
}

const deployment = (image: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld # the app
spec:
  replicas: 1
  template:
    spec:
      initContainers:
        - name: migrate
          image: ${image}
      containers:
        - name: app
          image: ${image}   # keep me
        - name: sidecar
          image: envoyproxy/envoy:v1.30.0
`;

const cases: Case[] = [
  {
    name: 'Deployment: containers and initContainers, comments kept',
    input: deployment('registry.example.com/root/helloworld:ci-33'),
    image: 'registry.example.com/root/helloworld',
    tag: 'ci-34',
    expected: deployment('registry.example.com/root/helloworld:ci-34'),
  },
  {
    name: '--container narrows to one container',
    input: deployment('registry.example.com/root/helloworld:ci-33'),
    image: 'registry.example.com/root/helloworld',
    tag: 'ci-34',
    container: 'app',
    expected: deployment('registry.example.com/root/helloworld:ci-33').replace(
      'image: registry.example.com/root/helloworld:ci-33   #',
      'image: registry.example.com/root/helloworld:ci-34   #',
    ),
  },
  {
    name: 'CronJob, ephemeralContainers and a Rollout (any pod template shape)',
    input: `kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: 'nginx:1.25'}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
spec:
  template:
    spec:
      ephemeralContainers:
      - name: debug
        image: docker.io/library/nginx:1.25
`,
    image: 'nginx',
    tag: '1.27.3',
    expected: `kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: 'nginx:1.27.3'}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
spec:
  template:
    spec:
      ephemeralContainers:
      - name: debug
        image: docker.io/library/nginx:1.27.3
`,
  },
  {
    name: 'double-quoted, single-quoted, block scalar',
    input: 'a:\n  image: "nginx:1"\nb:\n  image: \'nginx:1\'\nc:\n  image: >-\n    nginx:1\n',
    image: 'docker.io/nginx',
    tag: '2',
    expected: 'a:\n  image: "nginx:2"\nb:\n  image: \'nginx:2\'\nc:\n  image: >-\n    nginx:2\n',
  },
  {
    name: 'CRLF line endings and a BOM stay',
    input: '\uFEFFspec:\r\n  containers:\r\n    - name: a\r\n      image: nginx:1 # x\r\n',
    image: 'nginx',
    tag: '2',
    expected: '\uFEFFspec:\r\n  containers:\r\n    - name: a\r\n      image: nginx:2 # x\r\n',
  },
  {
    name: 'registry with port, nested path; digest pin with --digest',
    input: 'image: localhost:5000/team/sub/app:1.0\n',
    image: 'localhost:5000/team/sub/app',
    tag: '1.1',
    digest: DIGEST,
    expected: `image: localhost:5000/team/sub/app:1.1@${DIGEST}\n`,
  },
  {
    name: 'a tag-only bump of a digest-pinned reference drops the stale digest',
    input: `image: ghcr.io/acme/api:1.0@${DIGEST}\n`,
    image: 'ghcr.io/acme/api',
    tag: '1.1',
    expected: 'image: ghcr.io/acme/api:1.1\n',
    note: /removed the stale digest sha256:a{64}/,
  },
  {
    name: 'an untagged reference gets its tag; no final newline stays that way',
    input: 'image: busybox',
    image: 'busybox',
    tag: '1.36',
    expected: 'image: busybox:1.36',
  },
  {
    name: 'compose-style and custom resources: image keys at any depth, *Image keys too',
    input: 'services:\n  web:\n    image: ghcr.io/acme/web:1\nspec:\n  thanosImage: ghcr.io/acme/web:1\n',
    image: 'ghcr.io/acme/web',
    tag: '2',
    expected: 'services:\n  web:\n    image: ghcr.io/acme/web:2\nspec:\n  thanosImage: ghcr.io/acme/web:2\n',
  },
  {
    name: 'status: is never touched',
    input:
      'kind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx:1\nstatus:\n  containerStatuses:\n  - image: nginx:1\n',
    image: 'nginx',
    tag: '2',
    expected:
      'kind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx:2\nstatus:\n  containerStatuses:\n  - image: nginx:1\n',
  },
  {
    name: 'kustomization: newTag replaced, matched by name',
    input:
      'kind: Kustomization\nimages:\n  - name: helloworld\n    newName: registry.example.com/root/helloworld\n    newTag: ci-33 # bumped by CI\n',
    image: 'helloworld',
    tag: 'ci-34',
    expected:
      'kind: Kustomization\nimages:\n  - name: helloworld\n    newName: registry.example.com/root/helloworld\n    newTag: ci-34 # bumped by CI\n',
  },
  {
    name: 'kustomization: matched by newName; a missing newTag is inserted at the entry indentation',
    input:
      'images:\n- name: app\n  newName: registry.example.com/root/helloworld # where\nresources: [deployment.yml]\n',
    path: 'overlays/prod/kustomization.yaml',
    image: 'registry.example.com/root/helloworld',
    tag: 'ci-34',
    expected:
      'images:\n- name: app\n  newName: registry.example.com/root/helloworld # where\n  newTag: ci-34\nresources: [deployment.yml]\n',
  },
  {
    name: 'kustomization: CRLF insertion, numeric-looking tag quoted',
    input: 'kind: Component\r\nimages:\r\n  - name: app\r\n',
    image: 'app',
    tag: '1e3',
    expected: 'kind: Component\r\nimages:\r\n  - name: app\r\n    newTag: "1e3"\r\n',
  },
  {
    name: 'kustomization: flow-style entry; stale digest emptied',
    input: `kind: Kustomization\nimages:\n  - {name: app, newTag: "1", digest: ${DIGEST}}\n`,
    image: 'app',
    tag: '2',
    expected: 'kind: Kustomization\nimages:\n  - {name: app, newTag: "2", digest: ""}\n',
    note: /stale digest/,
  },
  {
    name: 'kustomization: --digest inserts a digest line',
    input: 'kind: Kustomization\nimages:\n  - name: app\n    newTag: "1"\n',
    image: 'app',
    tag: '1',
    digest: DIGEST2,
    expected: `kind: Kustomization\nimages:\n  - name: app\n    newTag: "1"\n    digest: ${DIGEST2}\n`,
  },
  {
    name: 'kustomization by its apiVersion, whatever the file is called',
    input:
      'apiVersion: kustomize.config.k8s.io/v1beta1\nresources:\n  - deployment.yml\nimages:\n  - name: nginx\n    newTag: 1.25.0 # pinned\n',
    path: 'overlays/prod/base.yml',
    image: 'nginx',
    tag: '1.26.0',
    expected:
      'apiVersion: kustomize.config.k8s.io/v1beta1\nresources:\n  - deployment.yml\nimages:\n  - name: nginx\n    newTag: 1.26.0 # pinned\n',
  },
  {
    name: 'kustomization by its top-level images: list alone (no apiVersion, no kind, not kustomization.yaml)',
    input:
      'resources: [deployment.yml]\nimages:\n- name: helloworld\n  newName: registry.example.com/root/helloworld\n  newTag: "ci-33"\n- name: redis\n',
    path: 'prod.yml',
    image: 'registry.example.com/root/helloworld',
    tag: 'ci-34',
    expected:
      'resources: [deployment.yml]\nimages:\n- name: helloworld\n  newName: registry.example.com/root/helloworld\n  newTag: "ci-34"\n- name: redis\n',
  },
  {
    name: 'kustomization by content: a missing newTag is inserted, no path given',
    input: 'images:\n  - name: app\n    newName: ghcr.io/acme/app\n',
    image: 'ghcr.io/acme/app',
    tag: '2',
    expected: 'images:\n  - name: app\n    newName: ghcr.io/acme/app\n    newTag: "2"\n',
  },
  {
    name: 'Helm values, ingress-nginx style: image: {registry, image, tag, digest}, digestChroot untouched',
    input: `controller:\n  image:\n    chroot: false\n    registry: registry.k8s.io\n    image: ingress-nginx/controller\n    ## a comment between\n    tag: "v1.9.4"\n    digest: ${DIGEST}\n    digestChroot: ${DIGEST}\n    pullPolicy: IfNotPresent\n`,
    image: 'registry.k8s.io/ingress-nginx/controller',
    tag: 'v1.9.5',
    digest: DIGEST2,
    expected: `controller:\n  image:\n    chroot: false\n    registry: registry.k8s.io\n    image: ingress-nginx/controller\n    ## a comment between\n    tag: "v1.9.5"\n    digest: ${DIGEST2}\n    digestChroot: ${DIGEST}\n    pullPolicy: IfNotPresent\n`,
  },
  {
    name: 'Helm values, ingress-nginx style: tag: v1.2.9@sha256:… gets a new tag and digest in the one scalar',
    input: `admissionWebhooks:\n  patch:\n    image:\n      registry: registry.k8s.io\n      image: ingress-nginx/kube-webhook-certgen\n      tag: 'v1.2.9@${DIGEST}' # pinned\n`,
    image: 'registry.k8s.io/ingress-nginx/kube-webhook-certgen',
    tag: 'v1.3.0',
    digest: DIGEST2,
    expected: `admissionWebhooks:\n  patch:\n    image:\n      registry: registry.k8s.io\n      image: ingress-nginx/kube-webhook-certgen\n      tag: 'v1.3.0@${DIGEST2}' # pinned\n`,
  },
  {
    name: 'Helm values, ingress-nginx style: a tag-only bump of tag@digest drops the stale digest',
    input: `image:\n  registry: registry.k8s.io\n  image: ingress-nginx/kube-webhook-certgen\n  tag: v1.2.9@${DIGEST}\n`,
    image: 'registry.k8s.io/ingress-nginx/kube-webhook-certgen',
    tag: 'v1.3.0',
    expected:
      'image:\n  registry: registry.k8s.io\n  image: ingress-nginx/kube-webhook-certgen\n  tag: v1.3.0\n',
    note: /removed the stale digest/,
  },
  {
    name: 'Helm values, ingress-nginx style: --digest alone keeps the tag in tag@digest',
    input: `image:\n  registry: registry.k8s.io\n  image: ingress-nginx/controller\n  tag: v1.2.9@${DIGEST}\n`,
    image: 'registry.k8s.io/ingress-nginx/controller',
    digest: DIGEST2,
    expected: `image:\n  registry: registry.k8s.io\n  image: ingress-nginx/controller\n  tag: v1.2.9@${DIGEST2}\n`,
  },
  {
    name: 'Helm values: registry + repository + tag map at any depth; plain numbers are quoted',
    input:
      'global: {}\nbackend:\n  image:\n    registry: ghcr.io\n    repository: acme/api\n    tag: 1.10 # chart default\n    pullPolicy: IfNotPresent\n',
    image: 'ghcr.io/acme/api',
    tag: '0755',
    expected:
      'global: {}\nbackend:\n  image:\n    registry: ghcr.io\n    repository: acme/api\n    tag: "0755" # chart default\n    pullPolicy: IfNotPresent\n',
  },
  {
    name: 'Helm values: repository + tag map under any key, tag true quoted',
    input: 'redis:\n  repository: public.ecr.aws/docker/library/redis\n  tag: "7"\n',
    image: 'public.ecr.aws/docker/library/redis',
    tag: 'true',
    expected: 'redis:\n  repository: public.ecr.aws/docker/library/redis\n  tag: "true"\n',
  },
  {
    name: 'Helm values: a missing tag is inserted',
    input: 'image:\n  repository: ghcr.io/acme/api\n  pullPolicy: Always\nreplicas: 1\n',
    image: 'ghcr.io/acme/api',
    tag: '2.0.0',
    expected: 'image:\n  repository: ghcr.io/acme/api\n  pullPolicy: Always\n  tag: 2.0.0\nreplicas: 1\n',
  },
  {
    name: 'Flux setter markers: whole reference and :name/:tag parts',
    input:
      'a:\n  ref: ghcr.io/acme/app:1.0.0 # {"$imagepolicy": "flux-system:app"}\nb:\n  repo: ghcr.io/acme/app # {"$imagepolicy": "flux-system:app2:name"}\n  version: 1.0.0 # {"$imagepolicy": "flux-system:app2:tag"}\n',
    image: 'ghcr.io/acme/app',
    tag: '1.1.0',
    expected:
      'a:\n  ref: ghcr.io/acme/app:1.1.0 # {"$imagepolicy": "flux-system:app"}\nb:\n  repo: ghcr.io/acme/app # {"$imagepolicy": "flux-system:app2:name"}\n  version: 1.1.0 # {"$imagepolicy": "flux-system:app2:tag"}\n',
  },
  {
    name: "Flux's ImageRepository spec.image is not a running image",
    input:
      'apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nspec:\n  image: ghcr.io/acme/app\n---\nkind: Pod\nspec:\n  containers:\n  - {name: a, image: ghcr.io/acme/app:1}\n',
    image: 'ghcr.io/acme/app',
    tag: '2',
    expected:
      'apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nspec:\n  image: ghcr.io/acme/app\n---\nkind: Pod\nspec:\n  containers:\n  - {name: a, image: ghcr.io/acme/app:2}\n',
  },
  {
    name: 'an anchor defined on an image and aliased by another image: one edit serves both',
    input: 'a:\n  image: &img nginx:1\nb:\n  image: *img\n',
    image: 'nginx',
    tag: '2',
    expected: 'a:\n  image: &img nginx:2\nb:\n  image: *img\n',
  },
  {
    name: 'an anchor shared with another value is edited with followAnchor',
    input: 'x-default: &img nginx:1\nservices:\n  web:\n    image: *img\n',
    image: 'nginx',
    tag: '2',
    followAnchor: true,
    expected: 'x-default: &img nginx:2\nservices:\n  web:\n    image: *img\n',
  },
];

describe('setImage: table', () => {
  for (const c of cases) {
    test(c.name, () => {
      const r = setImage(c.input, c);
      assert.equal(r.text, c.expected);
      assert.ok(r.changes.length >= 1);
      if (c.note) assert.match(r.changes.map((x) => x.note ?? '').join('\n'), c.note);
      // Idempotent: a second run changes nothing.
      const again = setImage(r.text, c);
      assert.equal(again.text, r.text);
      assert.equal(again.changes.length, 0);
    });
  }
});

describe('setImage: errors', () => {
  const text = deployment('registry.example.com/root/helloworld:ci-33');
  const image = 'registry.example.com/root/helloworld';
  const rules: Array<[string, Partial<Parameters<typeof setImage>[1]>, RegExp]> = [
    ['uppercase repository', { image: 'Registry.example.com/Root/App', tag: '1' }, /must be lowercase/],
    ['spaces in the repository', { image: 'my app', tag: '1' }, /white space/],
    ['a tag in --image', { image: `${image}:ci-33`, tag: '1' }, /without tag or digest/],
    [
      'an invalid reference in --image',
      { image: 'alpine:invalid!', tag: '1' },
      /^--image 'alpine:invalid!' is not a valid reference: tag 'invalid!' is invalid/,
    ],
    ['a tag with spaces', { image, tag: 'ci 34' }, /tag 'ci 34' is invalid/],
    ['a 129-character tag', { image, tag: 'a'.repeat(129) }, /129 characters; the limit is 128/],
    ['a tag starting with a dot', { image, tag: '.x' }, /cannot start with/],
    ['a bad digest', { image, tag: '1', digest: 'sha256:xyz' }, /digest 'sha256:xyz' is invalid/],
    ['a short sha256', { image, digest: `sha256:${'a'.repeat(63)}` }, /invalid/],
    ['neither tag nor digest', { image }, /give --tag, --digest or both/],
  ];
  for (const [name, opts, message] of rules) {
    test(name, () => {
      assert.throws(
        () => setImage(text, opts as never),
        (e: Error) => e instanceof InvalidReferenceError && message.test(e.message),
      );
    });
  }

  test('not referenced: lists what is', () => {
    assert.throws(
      () => setImage(text, { image: 'nginx', tag: '1' }),
      (e: Error) =>
        e instanceof NotReferencedError &&
        /found: registry.example.com\/root\/helloworld, envoyproxy\/envoy/.test(e.message),
    );
    assert.throws(() => setImage(text, { image, tag: '1', container: 'nope' }), NotReferencedError);
  });

  test("an invalid reference in the file is reported as invalid, not as 'not referenced'", () => {
    const broken = deployment('alpine:invalid!');
    assert.throws(
      () => setImage(broken, { image: 'alpine', tag: '3.20', path: 'k8s/deployment.yml' }),
      (e: Error) =>
        e instanceof InvalidReferenceError &&
        /^k8s\/deployment\.yml:11:18: image 'alpine:invalid!' is not a valid reference: tag 'invalid!' is invalid/.test(
          e.message,
        ),
    );
    // the same for docker.io/library/alpine, and for a Helm map with an invalid tag
    assert.throws(
      () => setImage(broken, { image: 'docker.io/library/alpine', tag: '3' }),
      /^InvalidReferenceError: line 11:18: /,
    );
    assert.throws(
      () =>
        setImage('image:\n  repository: ghcr.io/acme/api\n  tag: "2.0 beta"\n', {
          image: 'ghcr.io/acme/api',
          tag: '3',
        }),
      (e: Error) =>
        e instanceof InvalidReferenceError && /line 3:8: image 'ghcr.io\/acme\/api:2.0 beta'/.test(e.message),
    );
    // asked for another image: not referenced, and the invalid one is named
    assert.throws(
      () => setImage(broken, { image: 'nginx', tag: '1' }),
      (e: Error) =>
        e instanceof NotReferencedError &&
        /not valid references: 'alpine:invalid!' \(line 11\)/.test(e.message),
    );
  });

  test('invalid YAML names line and column', () => {
    assert.throws(
      () => setImage('a: 1\nb: [1, 2\nc: 3\n', { image: 'nginx', tag: '1' }),
      (e: Error) => e instanceof YamlSyntaxError && e.line >= 2 && e.column >= 1,
    );
  });

  test('an anchor that also feeds other values is not edited silently', () => {
    const shared = 'x-default: &img nginx:1\nother: *img\nservices:\n  web:\n    image: *img\n';
    assert.throws(
      () => setImage(shared, { image: 'nginx', tag: '2' }),
      (e: Error) =>
        e instanceof SharedAnchorError && /\.x-default/.test(e.message) && /\.other/.test(e.message),
    );
  });
});

describe('findImages', () => {
  test('kinds, positions and byte ranges (with multi-byte text before)', () => {
    const text = '# héllo wörld ✓\nspec:\n  containers:\n    - name: app\n      image: "nginx:1.25"\n';
    const [ref] = findImages(text);
    assert.equal(ref.kind, 'container');
    assert.equal(ref.container, 'app');
    assert.equal(ref.line, 5);
    assert.equal(ref.column, 14);
    assert.equal(text.slice(...ref.range), '"nginx:1.25"');
    const bytes = Buffer.from(text);
    assert.equal(bytes.subarray(...ref.byteRange).toString(), '"nginx:1.25"');
    assert.equal(ref.normalized, 'docker.io/library/nginx');
  });

  test('nginx, docker.io/nginx and docker.io/library/nginx are one repository', () => {
    for (const n of [
      'nginx',
      'docker.io/nginx',
      'docker.io/library/nginx',
      'index.docker.io/library/nginx',
    ]) {
      assert.equal(normalizeRepository(n), 'docker.io/library/nginx');
    }
    assert.equal(normalizeRepository('localhost:5000/app'), 'localhost:5000/app');
    assert.equal(normalizeRepository('acme/app'), 'docker.io/acme/app');
  });

  test("a top-level images: list that is not kustomize's is no kustomization", () => {
    // Helm values with an images list of their own: `tag` is no kustomize field
    assert.deepEqual(
      findImages('images:\n  - name: ghcr.io/acme/api\n    tag: "1"\n').map((r) => r.kind),
      [],
    );
    // names alone set nothing; a Kubernetes object's images are its own
    assert.deepEqual(
      findImages('images:\n  - name: nginx\n').map((r) => r.kind),
      [],
    );
    assert.deepEqual(
      findImages('apiVersion: v1\nkind: Thing\nimages:\n  - name: nginx\n    newTag: "1"\n').map(
        (r) => r.kind,
      ),
      [],
    );
    assert.deepEqual(
      findImages('images:\n  - name: nginx\n    newTag: "1"\n').map((r) => [r.kind, r.value]),
      [['kustomize', 'nginx:1']],
    );
  });

  test('ingress-nginx tag@digest is one reference with both parts, at the tag', () => {
    const text = `image:\n  registry: registry.k8s.io\n  image: ingress-nginx/controller\n  tag: "v1.2.9@${DIGEST}"\n`;
    const [ref] = findImages(text);
    assert.equal(ref.kind, 'helm');
    assert.equal(ref.tag, 'v1.2.9');
    assert.equal(ref.digest, DIGEST);
    assert.equal(ref.value, `registry.k8s.io/ingress-nginx/controller:v1.2.9@${DIGEST}`);
    // a separate digest besides tag@digest is ambiguous: not a reference (the chart would render x@a@b)
    assert.deepEqual(findImages(`${text}  digest: ${DIGEST2}\n`), []);
  });

  test('an alias-expansion bomb is not expanded', () => {
    let bomb = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    for (let i = 1; i < 12; i++)
      bomb += `a${i}: &a${i} [${Array(9)
        .fill(`*a${i - 1}`)
        .join(',')}]\n`;
    bomb += 'spec:\n  containers:\n  - name: x\n    image: nginx:1\n';
    const started = Date.now();
    assert.equal(findImages(bomb).length, 1);
    assert.equal(setImage(bomb, { image: 'nginx', tag: '2' }).changes.length, 1);
    assert.ok(Date.now() - started < 5000);
  });

  test('a file of tens of megabytes is handled', () => {
    const doc = (i: number) =>
      `---\nkind: Pod\nmetadata: {name: p${i}}\nspec:\n  containers:\n  - name: c\n    image: ghcr.io/acme/app${i % 50}:1\n`;
    const parts: string[] = [];
    let size = 0;
    for (let i = 0; size < 12_000_000; i++) {
      const d = doc(i);
      parts.push(d);
      size += d.length;
    }
    const text = parts.join('');
    const r = setImage(text, { image: 'ghcr.io/acme/app7', tag: '2' });
    assert.equal(r.changes.length, parts.filter((_, i) => i % 50 === 7).length);
    assert.equal(r.text.length, text.length);
  });
});
