// Small Markdown helpers for bot-authored text. Values that reach Markdown come from
// validated inputs (tags, repositories, paths); these helpers still neutralise what could
// break a table cell or a code span.

/** A code span that survives backticks and pipes in the value. */
export function code(value: string): string {
  const clean = value.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
  const ticks = clean.includes('`') ? '``' : '`';
  return `${ticks}${ticks.length > 1 ? ' ' : ''}${clean}${ticks.length > 1 ? ' ' : ''}${ticks}`;
}

/** A link, or the plain text when the URL is not http(s). */
export function link(text: string, url: string | undefined): string {
  if (!url || !/^https?:\/\/[^\s()<>]+$/.test(url)) return text;
  return `[${text.replace(/[[\]]/g, '')}](${url})`;
}

/** A fence longer than any run of backticks inside the content. */
export function fence(content: string): string {
  const longest = Math.max(2, ...(content.match(/`+/g) ?? []).map((m) => m.length));
  return '`'.repeat(longest + 1);
}

/**
 * Text from elsewhere (an app's commit titles) as inert Markdown: no formatting, links,
 * HTML or references, and no `@mention` that would notify people.
 */
export function plain(value: string): string {
  return value
    .replace(/[\r\n]+/g, ' ')
    .replace(/[\\`*_[\]<>|~]/g, (c) => `\\${c}`)
    .replace(/([@%$^#!])(?=\w)/g, '$1\u200b');
}
