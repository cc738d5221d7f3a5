import {
  CapabilityRegistry,
  newId,
  type ToolContext,
  type ToolDefinition,
  toolSpec,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import {
  TEST_WEATHER_CAPABILITY_ID,
  type TestWeatherConfig,
  testWeatherCapability,
  type WeatherForecast,
} from './index.js';

/** The tools never touch files, storage or memory, so those members are left out. */
function context(config: TestWeatherConfig = {}): ToolContext<TestWeatherConfig> {
  const sessionId = newId('session');
  const turnId = newId('turn');
  const toolCallId = `call_${crypto.randomUUID()}`;
  return {
    sessionId,
    turnId,
    toolCallId,
    idempotencyKey: `${sessionId}/${turnId}/${toolCallId}`,
    iteration: 1,
    config,
    signal: new AbortController().signal,
  } as unknown as ToolContext<TestWeatherConfig>;
}

function tool(name: string): ToolDefinition<unknown, TestWeatherConfig> {
  const found = testWeatherCapability.tools.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no tool ${name}`);
  return found as unknown as ToolDefinition<unknown, TestWeatherConfig>;
}

async function call(name: string, args: unknown, config?: TestWeatherConfig): Promise<unknown> {
  const definition = tool(name);
  return definition.execute(definition.inputSchema.parse(args), context(config));
}

describe('testWeatherCapability', () => {
  it('is the test_weather capability with get_weather and get_forecast', () => {
    expect(testWeatherCapability.id).toBe(TEST_WEATHER_CAPABILITY_ID);
    expect(TEST_WEATHER_CAPABILITY_ID).toBe('test_weather');
    expect(testWeatherCapability.tools.map((candidate) => candidate.name)).toEqual([
      'get_weather',
      'get_forecast',
    ]);
    expect(testWeatherCapability.systemPrompt).toBeUndefined();
  });

  it('registers and validates its configuration in a CapabilityRegistry', () => {
    const registry = new CapabilityRegistry().register(testWeatherCapability);
    expect(registry.resolve([{ id: 'test_weather' }])[0]?.config).toEqual({});
    expect(
      registry.resolve([{ id: 'test_weather', config: { startDate: '2025-01-30' } }])[0]?.config,
    ).toEqual({ startDate: '2025-01-30' });
    expect(() =>
      registry.resolve([{ id: 'test_weather', config: { startDate: 'tomorrow' } }]),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });

  it('reports the same current weather for the same place every time', async () => {
    const first = await call('get_weather', { location: 'New York' });
    expect(first).toEqual({
      location: 'New York',
      temperature: 21,
      units: 'celsius',
      conditions: 'partly cloudy',
      humidity: 31,
      wind_speed_kmh: 6,
    });
    expect(await call('get_weather', { location: 'New York' })).toEqual(first);
    expect(await call('get_weather', { location: 'New York', units: 'fahrenheit' })).toMatchObject({
      temperature: 69.8,
      units: 'fahrenheit',
    });
  });

  it('forecasts the requested days from the configured start date', async () => {
    const result = (await call(
      'get_forecast',
      { location: 'Tokyo', days: 5 },
      { startDate: '2025-01-30' },
    )) as WeatherForecast;
    expect(result).toMatchObject({ location: 'Tokyo', units: 'celsius', days: 5 });
    expect(result.forecast.map((day) => day.date)).toEqual([
      '2025-01-30',
      '2025-01-31',
      '2025-02-01',
      '2025-02-02',
      '2025-02-03',
    ]);
    expect(result.forecast[0]).toEqual({
      date: '2025-01-30',
      high: 14,
      low: 2,
      conditions: 'windy',
      precipitation_chance: 34,
    });
    for (const day of result.forecast) expect(day.low).toBeLessThan(day.high);
  });

  it('forecasts three days by default, at most seven, starting today without a start date', async () => {
    const byDefault = (await call('get_forecast', { location: 'Paris' })) as WeatherForecast;
    expect(byDefault.days).toBe(3);
    expect(byDefault.forecast).toHaveLength(3);
    expect(byDefault.forecast[0]?.date).toBe(new Date().toISOString().slice(0, 10));
    const capped = (await call('get_forecast', { location: 'Paris', days: 30 })) as WeatherForecast;
    expect(capped.days).toBe(7);
    expect(capped.forecast).toHaveLength(7);
  });

  it('rejects a missing location, unknown units and extra arguments at validation', () => {
    const weather = tool('get_weather').inputSchema;
    expect(weather.safeParse({}).success).toBe(false);
    expect(weather.safeParse({ location: 'Oslo', units: 'kelvin' }).success).toBe(false);
    expect(weather.safeParse({ location: 'Oslo', extra: true }).success).toBe(false);
    expect(tool('get_forecast').inputSchema.safeParse({ location: 'Oslo', days: 0 }).success).toBe(
      false,
    );
  });

  it('describes the tools to the model as strict JSON Schemas requiring location', () => {
    for (const definition of testWeatherCapability.tools) {
      const spec = toolSpec(definition);
      expect(spec.inputSchema).toMatchObject({
        type: 'object',
        properties: {
          location: { type: 'string' },
          units: { enum: ['celsius', 'fahrenheit'] },
        },
        required: ['location'],
        additionalProperties: false,
      });
    }
    expect(toolSpec(tool('get_forecast')).inputSchema).toMatchObject({
      properties: { days: { type: 'integer', minimum: 1 } },
    });
  });
});
