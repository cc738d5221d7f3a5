import { runMcpExample } from './example.js';

// A variable of this process the server must not see: stdio servers get only their config's env.
process.env.HOST_ONLY_SECRET = 'the host keeps this';

const { result, mcpTools, toolResults, shownServer } = await runMcpExample();
console.log('MCP tools offered to the model:');
for (const tool of mcpTools)
  console.log(`  ${tool.name} (server ${tool.server}, tool ${tool.serverToolName})`);
console.log('Tool results:');
for (const text of toolResults) console.log(`  ${text}`);
console.log(`Server as a context shows it: ${JSON.stringify(shownServer)}`);
console.log(`Answer: ${result.response}`);
