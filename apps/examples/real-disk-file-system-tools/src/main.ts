import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRealDiskFileSystemToolsExample } from './example.js';

const workspace = mkdtempSync(join(tmpdir(), 'everruns-file-tools-'));
console.log(`workspace root: ${workspace}`);
try {
  const output = await runRealDiskFileSystemToolsExample(workspace);
  const { result } = output;
  console.log(
    `turn done: success=${result.success} iterations=${result.iterations} tool calls=${result.toolCallsCount} response=${JSON.stringify(result.response)}`,
  );
  for (const [index, toolResult] of output.toolResults.entries()) {
    console.log(
      `tool result ${index + 1}${toolResult.isError ? ' (error)' : ''}: ${toolResult.content}`,
    );
  }
  for (const request of output.approvals) {
    console.log(`approval asked: ${request.operation} ${request.path}`);
  }
  console.log(`output.txt on real disk: ${JSON.stringify(output.outputOnDisk)}`);
  console.log(`input.txt on real disk: ${JSON.stringify(output.inputOnDisk)}`);
  console.log(`.git/config on real disk: ${existsSync(join(workspace, '.git', 'config'))}`);
  if (output.outputOnDisk !== 'hello back') throw new Error('output.txt did not reach the disk');
  console.log(
    '\nok: file tool calls landed on the real disk, through the approval gate and the blocklist',
  );
} finally {
  rmSync(workspace, { recursive: true, force: true });
}
