import { parse, parseDocument } from 'yaml';
const t0 = performance.now(); parse('a: 1'); console.log('warm', performance.now()-t0);
const cases = {
  keys: (n) => Array.from({length: n/8}, (_, i) => `k${i}: v\n`).join(''),
  longvalue: (n) => 'name: x\ndescription: ' + 'y'.repeat(n),
  flowdeep: (n) => 'a: ' + '['.repeat(n/2),
  flowdeepclosed: (n) => 'a: ' + '['.repeat(n/2) + ']'.repeat(n/2),
  blockdeep: (n) => Array.from({length: Math.min(n/40, 2000)}, (_, i) => ' '.repeat(i) + 'k:\n').join(''),
  aliases: (n) => 'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n',
  quotes: (n) => 'a: "' + '\\"'.repeat(n/2),
  comments: (n) => '#'.repeat(n) ,
  anchors: (n) => Array.from({length: n/12}, (_, i) => `k${i}: &a${i} v\n`).join(''),
};
for (const [name, make] of Object.entries(cases)) for (const n of [32768, 131072]) {
  const src = make(n);
  const t = performance.now();
  let r;
  try { parse(src, { schema: 'core', maxAliasCount: 100, merge: false, customTags: [] }); r='ok'; } catch (e) { r = e.constructor.name + ' ' + e.message.slice(0,60); }
  console.log(name.padEnd(14), src.length, (performance.now()-t).toFixed(1), r);
}
