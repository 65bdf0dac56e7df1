// The bounded cache observe.ts keeps immutable GitLab facts in (a merged MR, a commit's first
// parent, a compare between two SHAs): it must forget the least recently used beyond its size,
// or a long-running serve would grow without end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lru } from '../../src/feedback/observe.js';

test('Lru: keeps at most its size, forgetting the least recently used', () => {
  const c = new Lru<string, number>(2);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.get('a'), 1); // a is now the most recently used
  c.set('c', 3); // b goes
  assert.equal(c.size, 2);
  assert.equal(c.has('b'), false);
  assert.equal(c.get('a'), 1);
  assert.equal(c.get('c'), 3);
});

test('Lru: a null value is kept and told apart from a miss', () => {
  const c = new Lru<string, string | null>(2);
  c.set('root-commit', null);
  assert.equal(c.has('root-commit'), true);
  assert.equal(c.get('root-commit'), null);
  assert.equal(c.has('other'), false);
});
