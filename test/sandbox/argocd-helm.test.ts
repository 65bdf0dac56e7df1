// The sandbox Argo CD's Helm rendering, as a table: what it renders as `helm template` does,
// and what it refuses by name rather than render wrongly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HelmError, mergeValues, renderTemplate } from '../../src/sandbox/argocd/helm.js';

const scope = {
  Values: { image: { repository: 'reg/hw', tag: 'ci-34' }, replicas: 2, empty: '' },
  Release: { Name: 'hw-helm' },
  Chart: { Name: 'helloworld' },
};

const rows: Array<[string, string, string | RegExp]> = [
  ['values by path', 'image: {{ .Values.image.repository }}:{{ .Values.image.tag }}', 'image: reg/hw:ci-34'],
  ['numbers as written', 'replicas: {{ .Values.replicas }}', 'replicas: 2'],
  ['release and chart', '{{ .Release.Name }}/{{ .Chart.Name }}', 'hw-helm/helloworld'],
  ['quote', 'tag: {{ .Values.image.tag | quote }}', 'tag: "ci-34"'],
  [
    'default for a missing or empty value',
    '{{ .Values.missing | default "x" }} {{ .Values.empty | default 3 }}',
    'x 3',
  ],
  ['a missing value is empty', '[{{ .Values.nope.deeper }}]', '[]'],
  ['{{- and -}} trim whitespace', 'a  \n  {{- .Values.replicas -}}  \n  b', 'a2b'],
  ['if is refused by name', '{{ if .Values.replicas }}x{{ end }}', /not \{\{ if \.Values\.replicas \}\}/],
  ['toYaml is refused', '{{ .Values.image | toYaml }}', /quote and default only, not \| toYaml/],
  ['a map where a scalar goes is refused', '{{ .Values.image }}', /is a map or list/],
];
for (const [name, text, want] of rows)
  test(`helm template: ${name}`, () => {
    if (typeof want === 'string') assert.equal(renderTemplate(text, scope, 't.yaml'), want);
    else
      assert.throws(
        () => renderTemplate(text, scope, 't.yaml'),
        (e: Error) => e instanceof HelmError && want.test(e.message),
      );
  });

test('value files: later files win, maps merge key by key', () => {
  assert.deepEqual(
    mergeValues({ image: { repository: 'r', tag: 'latest' }, n: 1 }, { image: { tag: 'ci-34' } }),
    {
      image: { repository: 'r', tag: 'ci-34' },
      n: 1,
    },
  );
});
