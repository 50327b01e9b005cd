// Links in the project's Markdown, and the Markdown pages its code names, so that a test can
// check that each points at something that exists (test/unit/docs-links.test.ts).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');

/** Folders that are not the project's own text. */
const SKIPPED = new Set(['node_modules', '.git', '.venv', 'dist', 'test-artifacts', '.data', 'coverage']);

/** Every file under the project's root whose name passes `keep`, as paths from the root. */
export function projectFiles(keep: (name: string) => boolean, dir = ROOT): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return SKIPPED.has(name) ? [] : projectFiles(keep, path);
    return keep(name) ? [relative(ROOT, path)] : [];
  });
}

/** The lines of a Markdown text outside fenced code blocks, with their numbers (1-based). */
function proseLines(markdown: string): Array<[line: string, number: number]> {
  let fenced = false;
  return markdown.split('\n').flatMap((line, i): Array<[string, number]> => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return [];
    }
    return fenced ? [] : [[line, i + 1]];
  });
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens. */
export function githubSlug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link counts by its text
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The anchors of a page's headings; a repeated heading gets -1, -2 … as on GitHub. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [line] of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = githubSlug(heading);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

export interface Reference {
  /** The file it was found in, from the root. */
  from: string;
  line: number;
  /** The path as written (empty for a link to an anchor of the same page). */
  path: string;
  anchor?: string;
}

/** The relative links of a Markdown page, `[text](target)`, outside code. */
export function linksOf(file: string, markdown: string): Reference[] {
  const refs: Reference[] = [];
  for (const [raw, line] of proseLines(markdown)) {
    const text = raw.replace(/`[^`]*`/g, ''); // inline code is not a link
    for (const match of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      const [path = '', anchor] = target.split('#');
      refs.push({ from: file, line, path, ...(anchor ? { anchor } : {}) });
    }
  }
  return refs;
}

/** The Markdown pages a source file names (`docs/messaging.md#the-envelope`, `README.md`). */
export function pageMentionsOf(file: string, source: string): Reference[] {
  const refs: Reference[] = [];
  source.split('\n').forEach((text, i) => {
    for (const match of text.matchAll(/(?<![\w/.-])((?:\.{1,2}\/)?(?:[\w.-]+\/)*[\w.-]+\.md)(?:#([\w-]+))?/g)) {
      refs.push({ from: file, line: i + 1, path: match[1]!, ...(match[2] ? { anchor: match[2] } : {}) });
    }
  });
  return refs;
}

/**
 * What is wrong with a reference: a file that does not exist, or an anchor its page lacks;
 * undefined when it is fine. `base` is the folder a relative path starts from.
 */
export function problemWith(ref: Reference, base: string): string | undefined {
  const target = ref.path === '' ? join(ROOT, ref.from) : resolve(base, ref.path);
  const where = `${ref.from}:${ref.line}: ${ref.path}${ref.anchor ? `#${ref.anchor}` : ''}`;
  if (!existsSync(target)) return `${where}: no such file`;
  if (ref.anchor && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(ref.anchor)) return `${where}: no such heading`;
  return undefined;
}

/** A page named in code is taken from the project's root, or else from the file's own folder. */
export function problemWithMention(ref: Reference): string | undefined {
  const fromRoot = problemWith(ref, ROOT);
  if (fromRoot === undefined) return undefined;
  return problemWith(ref, dirname(join(ROOT, ref.from))) === undefined ? undefined : fromRoot;
}
