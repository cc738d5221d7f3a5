import { parse } from 'yaml';
parse('a: 1');
const N = 16384;
const cases = {
  keys: Array.from({length: N/8}, (_, i) => `k${i}: v\n`).join('').slice(0, N),
  flowmap: '{' + Array.from({length: N/6}, (_, i) => `k${i}: v`).join(', ').slice(0, N-1) + '}',
  seqanchors: Array.from({length: N/10}, (_, i) => `- &a${i} v\n`).join('').slice(0,N),
  seq: '- v\n'.repeat(N/4),
  flowseq: '[' + 'v,'.repeat(N/2 - 1) + ']',
  nestedmaps: Array.from({length: 60}, (_, i) => ' '.repeat(i) + 'k:\n').join('') + ' '.repeat(60) + ('x: y\n' + ' '.repeat(60)).repeat(200),
  tags: Array.from({length: N/16}, (_, i) => `k${i}: !!str v\n`).join('').slice(0, N),
  customtag: 'a: !!js/function "function(){}"\nb: !foo bar\n',
  blockscalars: ('k: |\n' + '  line\n'.repeat(50)).repeat(40),
};
for (const unique of [true, false]) for (const [name, src] of Object.entries(cases)) {
  const t = performance.now();
  let r;
  try { const v = parse(src, { schema: 'core', maxAliasCount: 100, merge: false, uniqueKeys: unique }); r='ok ' + JSON.stringify(v).slice(0,60); } catch (e) { r = e.constructor.name + ' ' + e.message.slice(0,60); }
  console.log(unique, name.padEnd(14), src.length, (performance.now()-t).toFixed(1), r);
}
