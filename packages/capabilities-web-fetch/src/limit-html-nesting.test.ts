import { describe, expect, it } from 'vitest';
import { limitHtmlNesting, limitHtmlNestingInSlices } from './limit-html-nesting.js';

describe('limitHtmlNesting', () => {
  it('keeps well-formed markup as it is', () => {
    const html =
      '<h1 id="t">Title</h1><p>Some <b>bold</b> and <a href="/x?a=1&amp;b=2">link</a>.</p><br><img src="a.png" alt="A">';
    expect(limitHtmlNesting(html, 128)).toBe(html);
  });

  it('closes what is left open and drops end tags that close nothing', () => {
    expect(limitHtmlNesting('<div><b>x</i>y', 128)).toBe('<div><b>xy</b></div>');
    expect(limitHtmlNesting('<ul><li>one<li>two</ul>', 128)).toBe(
      '<ul><li>one</li><li>two</li></ul>',
    );
    expect(limitHtmlNesting('<p>one<p>two<div>three', 128)).toBe(
      '<p>one</p><p>two</p><div>three</div>',
    );
    expect(limitHtmlNesting('<table><tr><td>a<td>b<tr><td>c</table>', 128)).toBe(
      '<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>',
    );
  });

  it('drops tags nested deeper than the limit and keeps their text', () => {
    expect(limitHtmlNesting('<div><div><div><b>deep</b></div></div></div>', 2)).toBe(
      '<div><div>deep</div></div>',
    );
  });

  it('drops scripts, styles, comments and declarations', () => {
    expect(
      limitHtmlNesting(
        '<!doctype html><!-- c --><script>if (a < b) { "</div>" }</script><style>p{}</style>text<noscript><p>x</p></noscript>',
        128,
      ),
    ).toBe('text');
  });

  it('rewrites attributes double-quoted and escapes a stray <', () => {
    expect(limitHtmlNesting(`<a href='/x"y' title=plain data-x>go</a> 1 < 2`, 128)).toBe(
      '<a href="/x&quot;y" title="plain" data-x>go</a> 1 &lt; 2',
    );
    expect(limitHtmlNesting('text <a href="never closed', 128)).toBe(
      'text &lt;a href="never closed',
    );
  });

  it('takes time proportional to the input on hostile markup', async () => {
    for (const html of [
      '<div>'.repeat(200_000),
      '</b>'.repeat(200_000),
      '<a b'.repeat(200_000),
      '<a x="'.repeat(100_000),
      '<script>'.repeat(100_000),
      '<'.repeat(500_000),
    ]) {
      const started = performance.now();
      const result = await limitHtmlNestingInSlices(html, 128);
      expect(performance.now() - started, html.slice(0, 10)).toBeLessThan(2_000);
      expect(result.length).toBeLessThanOrEqual(html.length * 5);
    }
  });
});
