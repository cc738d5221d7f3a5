import { runInProcessRuntimeExample } from './example.js';

const result = await runInProcessRuntimeExample();
console.log(`success: ${result.success}`);
console.log(`iterations: ${result.iterations}`);
console.log(`tool calls: ${result.toolCallsCount}`);
console.log(`response: ${result.response}`);
