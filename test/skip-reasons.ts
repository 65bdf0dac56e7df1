// A node:test reporter that ends the run with why tests were skipped, one line a reason:
// `# skipped 22: docker-registry is not installed: apt-get install -y docker-registry`.
// node:test's own summary counts skips (`skipped N`) but does not say why. Use it beside
// another reporter:
//   node --test --test-reporter=spec --test-reporter-destination=stdout \
//     --test-reporter=./dist/test/skip-reasons.js --test-reporter-destination=stdout dist/test/

interface Event {
  type: string;
  data: { skip?: string | boolean; details?: { type?: string } };
}

export interface Skip {
  reason: string | boolean;
  /** a whole describe() skipped: node counts it among the suites, not the skipped tests */
  suite: boolean;
}

/** The closing lines for the skips seen, most frequent first (pure: a table test). */
export function skipSummary(skips: readonly Skip[]): string[] {
  const reasons = new Map<string, { tests: number; suites: number }>();
  for (const { reason, suite } of skips) {
    const why = typeof reason === 'string' && reason ? reason : 'no reason given';
    const n = reasons.get(why) ?? { tests: 0, suites: 0 };
    if (suite) n.suites++;
    else n.tests++;
    reasons.set(why, n);
  }
  const count = ({ tests, suites }: { tests: number; suites: number }) =>
    [tests ? `${tests}` : '', suites ? `${suites} suite${suites > 1 ? 's' : ''}` : '']
      .filter(Boolean)
      .join(' and ');
  return [...reasons]
    .sort((a, b) => b[1].tests + b[1].suites - (a[1].tests + a[1].suites) || a[0].localeCompare(b[0]))
    .map(([why, n]) => `# skipped ${count(n)}: ${why}\n`);
}

export default async function* skipReasons(source: AsyncIterable<Event>): AsyncGenerator<string> {
  const skips: Skip[] = [];
  for await (const event of source) {
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.skip !== undefined) {
      skips.push({ reason: event.data.skip, suite: event.data.details?.type === 'suite' });
    }
  }
  yield* skipSummary(skips);
}
