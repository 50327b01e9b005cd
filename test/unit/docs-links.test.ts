// The project's own documentation holds together: every relative link of its Markdown pages
// (README.md, docs/, each folder's README) reaches a file, and a heading when it names one;
// and every Markdown page the code, scripts and configuration name exists, with the heading
// they name. A page moved or a heading renamed fails here, not in a reader's browser.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect } from 'chai';
import { anchorsOf, githubSlug, linksOf, pageMentionsOf, problemWith, problemWithMention, projectFiles, ROOT } from '../helpers/markdown';

const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

describe('documentation links', () => {
  it('makes anchors as GitHub does', () => {
    expect(githubSlug('Lost sagas: the reconciler')).to.equal('lost-sagas-the-reconciler');
    expect(githubSlug('The saga (`workflows/`, `activities/`)')).to.equal('the-saga-workflows-activities');
    expect(githubSlug('order-projection (the read model)')).to.equal('order-projection-the-read-model');
    expect([...anchorsOf('# A\n## B\n```\n# not a heading\n```\n## B\n')]).to.deep.equal(['a', 'b', 'b-1']);
  });

  it('has the pages the README sends a reader to', () => {
    const pages = projectFiles((name) => name.endsWith('.md'));
    expect(pages).to.include.members(['README.md', 'docs/architecture.md', 'docs/messaging.md', 'docs/operations.md']);
    const readme = linksOf('README.md', read('README.md')).map((l) => l.path);
    expect(readme).to.include.members(['docs/architecture.md', 'docs/messaging.md', 'docs/operations.md', 'docs/asyncapi.yaml']);
  });

  it('resolves every relative link of every Markdown page, headings included', () => {
    const pages = projectFiles((name) => name.endsWith('.md'));
    const links = pages.flatMap((page) => linksOf(page, read(page)));
    expect(links.length, 'links found').to.be.greaterThan(20);
    const problems = links.flatMap((link) => problemWith(link, dirname(join(ROOT, link.from))) ?? []);
    expect(problems).to.deep.equal([]);
  });

  it('finds every Markdown page that code, scripts and configuration name, headings included', () => {
    const sources = projectFiles((name) => /\.(ts|mjs|js|cjs|sh|ya?ml)$/.test(name) || name === 'Dockerfile' || (name.endsWith('.json') && name !== 'package-lock.json'));
    const mentions = sources.flatMap((file) => pageMentionsOf(file, read(file)));
    expect(mentions.map((m) => m.path)).to.include('docs/messaging.md');
    const problems = mentions.flatMap((mention) => problemWithMention(mention) ?? []);
    expect(problems).to.deep.equal([]);
  });
});
