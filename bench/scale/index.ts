// npm run bench scale: issue 16's three costs that must not grow with the ops repo's size,
// the number of open MRs or the number of apps. Each part prints its own ratios and counts.
import { benchScaleApps } from './apps.js';
import { benchScalePush } from './push.js';
import { benchScaleUpdate } from './update.js';

export async function benchScale(): Promise<Record<string, number | string>> {
  return { ...(await benchScaleUpdate()), ...(await benchScalePush()), ...(await benchScaleApps()) };
}
