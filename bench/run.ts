// npm run bench: runs every benchmark (or those named on the command line) and prints
// one line per measurement.
import { benchFeedback } from './feedback.js';
import { benchManifests } from './manifests.js';
import { benchPromote } from './promote.js';
import { benchSandbox } from './sandbox.js';
import { benchScale } from './scale/index.js';
import { benchServe } from './serve.js';
import { benchStartup } from './startup.js';

const benches: Record<string, () => Promise<Record<string, number | string>>> = {
  feedback: benchFeedback,
  manifests: benchManifests,
  promote: benchPromote,
  sandbox: benchSandbox,
  scale: benchScale,
  serve: benchServe,
  startup: benchStartup,
};

const wanted = process.argv.slice(2);
for (const [name, fn] of Object.entries(benches)) {
  if (wanted.length && !wanted.includes(name)) continue;
  const result = await fn();
  for (const [k, v] of Object.entries(result)) console.log(`${name}: ${k} = ${v}`);
}
