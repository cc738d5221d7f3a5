import { describeContext, runInspectContextExample } from './example.js';

const { before, sent, after } = await runInspectContextExample();
console.log(describeContext('before the first turn', before));
if (sent) console.log(describeContext('sent by the first turn', sent));
console.log(describeContext('after the first turn', after));
