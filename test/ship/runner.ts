// Runs the GitHub Action's entry as the Actions runner does: every input of action.yml as
// an INPUT_<NAME> variable (its default when not given), outputs read back from the file
// GITHUB_OUTPUT names.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { tempDir } from '../helpers.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const ACTION = join(ROOT, 'action');

export interface ActionYml {
  inputs: Record<string, { required?: boolean; default?: string }>;
  outputs: Record<string, unknown>;
  runs: { using: string; main: string };
}

export async function actionYml(): Promise<ActionYml> {
  return parse(await readFile(join(ACTION, 'action.yml'), 'utf8')) as ActionYml;
}

export async function runAction(
  inputs: Record<string, string>,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; outputs: Record<string, string> }> {
  const yml = await actionYml();
  assert.equal(yml.runs.using, 'node20');
  const workspace = await tempDir();
  const outputFile = join(workspace, 'github_output');
  await writeFile(outputFile, '');
  const inputEnv: Record<string, string> = {};
  for (const [name, spec] of Object.entries(yml.inputs)) {
    inputEnv[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = inputs[name] ?? spec.default ?? '';
  }
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(
      process.execPath,
      [join(ACTION, yml.runs.main)],
      {
        cwd: workspace,
        env: {
          PATH: process.env.PATH,
          HOME: workspace,
          GITHUB_ACTIONS: 'true',
          GITHUB_OUTPUT: outputFile,
          GITHUB_REPOSITORY: 'acme/helloworld',
          GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567',
          GITHUB_SERVER_URL: 'https://github.com',
          GITHUB_RUN_ID: '4242',
          GITHUB_RUN_NUMBER: '34',
          RUNNER_TEMP: workspace,
          ...inputEnv,
          ...env,
        },
      },
      (err, out) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: String(out) }),
    );
  });
  // GITHUB_OUTPUT holds name<<DELIMITER, the value, DELIMITER
  const outputs: Record<string, string> = {};
  const text = await readFile(outputFile, 'utf8');
  for (const m of text.matchAll(/^([\w-]+)<<(\S+)\n([\s\S]*?)\n\2\n/gm)) outputs[m[1]] = m[3];
  return { code, stdout, outputs };
}

/** The fenced block after `<!-- example: NAME -->` in the README. */
export async function readmeExample(name: string): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const m = new RegExp(`<!-- example: ${name} -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\\n\`\`\``).exec(readme);
  assert.ok(m, `README has no example '${name}'`);
  return m[1];
}
