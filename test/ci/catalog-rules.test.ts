// The catalog rules scripts/components.mjs enforces on each ci-templates/ file before it
// becomes templates/<name>.yml, and the README table it writes from a spec: table tests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { componentFetchRace, ROOT } from './helpers.js';

interface Input {
  name: string;
  type: string;
  description: string;
  default?: unknown;
  required: boolean;
  options?: string[];
  regex?: string;
}
interface ComponentsScript {
  readSpec(file: string, source: string): { inputs: Input[]; problems: string[] };
  inputsTable(inputs: Input[]): string;
  componentFile(name: string, source: string): string;
}
const script = (await import(`${ROOT}scripts/components.mjs`)) as ComponentsScript;

const JOBS = '---\njob:\n  script: [echo]\n';
const spec = (inputs: string) => `spec:\n  inputs:\n${inputs}${JOBS}`;

test('readSpec: what breaks a catalog rule, and the line naming the file and input', () => {
  const rows: Array<[string, string, string[]]> = [
    [
      'described inputs of each type',
      spec(
        '    a:\n      description: A.\n      type: boolean\n      default: true\n    b:\n      description: B.\n',
      ),
      [],
    ],
    [
      'no --- after the spec',
      'spec:\n  inputs:\n    a:\n      description: A.\njob:\n  script: [echo]\n',
      ['t.yml: a component is a `spec:` header, then `---`, then the jobs (2 YAML documents)'],
    ],
    [
      'an input without description',
      spec('    a:\n      default: x\n'),
      ['t.yml: spec:inputs:a: no `description` (the catalog shows it)'],
    ],
    [
      'an unknown type',
      spec('    a:\n      description: A.\n      type: text\n'),
      ['t.yml: spec:inputs:a: type `text` is not one of string, number, boolean, array'],
    ],
    [
      'a default of another type',
      spec('    a:\n      description: A.\n      type: boolean\n      default: "yes"\n'),
      ['t.yml: spec:inputs:a: default `"yes"` is not a boolean'],
    ],
    [
      'a default outside the options',
      spec('    a:\n      description: A.\n      options: [oci, docker]\n      default: podman\n'),
      ['t.yml: spec:inputs:a: default `podman` is not one of the options'],
    ],
    [
      'a default not matching the regex',
      spec('    a:\n      description: A.\n      regex: ^[a-z]+$\n      default: A1\n'),
      ['t.yml: spec:inputs:a: default `A1` does not match regex `^[a-z]+$`'],
    ],
    [
      'a regex on a boolean',
      spec('    a:\n      description: A.\n      type: boolean\n      regex: ^t\n      default: true\n'),
      ['t.yml: spec:inputs:a: `regex` applies to string inputs only'],
    ],
    [
      'an unknown keyword',
      spec('    a:\n      description: A.\n      required: true\n'),
      ['t.yml: spec:inputs:a: unknown keyword `required` (description, type, default, options, regex)'],
    ],
    [
      'more than spec in the header',
      `spec:\n  inputs: {}\nstages: [x]\n${JOBS}`,
      ['t.yml: the first document must hold only `spec:`'],
    ],
    ['no jobs', 'spec:\n  inputs:\n    a:\n      description: A.\n---\n', ['t.yml: no jobs after the `---`']],
  ];
  for (const [name, source, problems] of rows)
    assert.deepEqual(script.readSpec('t.yml', source).problems, problems, name);
});

test('inputsTable: name, type (with options), default (required, empty), description (with regex)', () => {
  const { inputs } = script.readSpec(
    't.yml',
    spec(
      '    ops_project:\n      description: The ops project.\n      regex: ^\\S+/\\S+$\n' +
        '    format:\n      description: Format.\n      options: [oci, docker]\n      default: oci\n' +
        '    labels:\n      description: Labels | comma-separated.\n      default: ""\n',
    ),
  );
  assert.equal(
    script.inputsTable(inputs),
    [
      '| input | type | default | description |',
      '| --- | --- | --- | --- |',
      '| `ops_project` | string | (required) | The ops project. Must match `^\\S+/\\S+$`. |',
      '| `format` | string: `oci`, `docker` | `oci` | Format. |',
      '| `labels` | string | `""` | Labels \\| comma-separated. |',
    ].join('\n'),
  );
});

test('componentFile: the source, under a first line naming it', () => {
  assert.equal(
    script.componentFile('build', 'spec: {}\n'),
    '# Generated from ci-templates/build.yml by scripts/components.mjs: edit that file, then run it.\nspec: {}\n',
  );
});

test("componentFetchRace: only gitlab-ci-local's concurrent cp of one project's templates/", () => {
  const fetchFailed = 'Component include could not be fetched { project: root/gitops-bot, ref: 0.2.0 }\n';
  const rows: Array<[string, boolean]> = [
    [`${fetchFailed}cp: cannot create directory '/tmp/x/0.2.0/templates': File exists\n`, true],
    [`${fetchFailed}fatal: Remote branch 9.9.9 not found in upstream origin\n`, false],
    ["cp: cannot create directory '/tmp/x/templates': File exists\n", false],
  ];
  for (const [output, race] of rows) assert.equal(componentFetchRace(output), race, output);
});
