import { runOpenAiExample } from './example.js';

const baseUrl = process.env.OPENAI_BASE_URL;
const apiKey = process.env.OPENAI_API_KEY;
if (!baseUrl && !apiKey) {
  console.error(
    'Set OPENAI_API_KEY (api.openai.com) or OPENAI_BASE_URL (any OpenAI-compatible server), ' +
      'and optionally OPENAI_MODEL. See README.md.',
  );
  process.exit(1);
}

const { turn, usage } = await runOpenAiExample({
  model: process.env.OPENAI_MODEL ?? 'gpt-4.1-mini',
  ...(baseUrl ? { baseUrl } : {}),
  ...(apiKey ? { apiKey } : {}),
});
console.log(`success: ${turn.success}`);
console.log(`iterations: ${turn.iterations}`);
console.log(`tool calls: ${turn.toolCallsCount}`);
console.log(`response: ${turn.response}`);
for (const [index, tokens] of usage.entries()) {
  console.log(`call ${index + 1}: ${tokens.inputTokens} in, ${tokens.outputTokens} out`);
}
if (!turn.success) {
  console.error(`error: ${turn.error?.code}: ${turn.error?.message}`);
  process.exitCode = 1;
}
