import { createAdapter } from './peer-adapter/adapter.mjs';
import v8 from 'node:v8';
const adapter = await createAdapter('default');
const gc = () => { for (let i = 0; i < 4; i++) globalThis.gc(); };
// warm
for (let i = 0; i < 50; i++) { const c = adapter.newConversation(); for (let t = 0; t < 10; t++) await c.turn('What is 2 + 2?'); }
gc(); v8.writeHeapSnapshot('/tmp/c0.heapsnapshot');
const convs = [];
for (let i = 0; i < 200; i++) convs.push(adapter.newConversation());
for (let t = 0; t < 10; t++) await Promise.all(convs.map((c) => c.turn('What is 2 + 2?')));
gc(); v8.writeHeapSnapshot('/tmp/c1.heapsnapshot');
console.log(convs.length);
