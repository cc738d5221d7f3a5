import { describe, expect, it } from 'vitest';
import { runMcpExample } from './example.js';

describe('mcp example', () => {
  it('runs a turn with the tools of the shipped stdio MCP server', async () => {
    process.env.HOST_ONLY_SECRET = 'the host keeps this';
    try {
      const { result, mcpTools, toolResults, shownServer } = await runMcpExample();
      expect(mcpTools).toEqual([
        {
          name: 'units__celsius_to_fahrenheit',
          server: 'units',
          serverToolName: 'celsius_to_fahrenheit',
        },
        {
          name: 'units__kilometres_to_miles',
          server: 'units',
          serverToolName: 'kilometres_to_miles',
        },
        { name: 'units__environment', server: 'units', serverToolName: 'environment' },
      ]);
      // The child saw its configured variable, not the host's own.
      expect(toolResults).toEqual(['30 °C is 86 °F', '42.195 km is 26.22 mi', 'UNITS_API_TOKEN']);
      expect(result).toMatchObject({
        success: true,
        toolCallsCount: 3,
        response: 'It will be hot: 30 °C is 86 °F. The marathon: 42.195 km is 26.22 mi.',
      });
      expect(shownServer).toMatchObject({ env: { UNITS_API_TOKEN: '[redacted]' } });
      expect(JSON.stringify(shownServer)).not.toContain('example-token-not-shown');
    } finally {
      delete process.env.HOST_ONLY_SECRET;
    }
  });
});
