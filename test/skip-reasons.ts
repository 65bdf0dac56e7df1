// A node:test reporter that ends the run with why tests were skipped, one line a reason:
// `# skipped 22: docker-registry is not installed: apt-get install -y docker-registry`.
// node:test's own summary counts skips (`skipped N`) but does not say why. Use it beside
// another reporter:
//   node --test --test-reporter=spec --test-reporter-destination=stdout \
//     --test-reporter=./dist/test/skip-reasons.js --test-reporter-destination=stdout dist/test/

interface Event {
  type: string;
  data: { skip?: string | boolean; nesting?: number };
}

/** The closing lines for the skips seen, most frequent first (pure: a table test). */
export function skipSummary(skips: ReadonlyArray<string | boolean>): string[] {
  const reasons = new Map<string, number>();
  for (const skip of skips) {
    const why = typeof skip === 'string' && skip ? skip : 'no reason given';
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  }
  return [...reasons]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([why, n]) => `# skipped ${n}: ${why}\n`);
}

export default async function* skipReasons(source: AsyncIterable<Event>): AsyncGenerator<string> {
  const skips: Array<string | boolean> = [];
  for await (const event of source) {
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.skip !== undefined) {
      skips.push(event.data.skip);
    }
  }
  yield* skipSummary(skips);
}
