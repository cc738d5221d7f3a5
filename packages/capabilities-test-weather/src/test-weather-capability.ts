import { type Capability, defineCapability, defineTool } from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link testWeatherCapability}, as upstream (`test_weather`). */
export const TEST_WEATHER_CAPABILITY_ID = 'test_weather';

/** Temperature units the test_weather tools accept; `celsius` by default. */
export type TemperatureUnits = 'celsius' | 'fahrenheit';

/** Sky conditions the test_weather tools report. */
export type WeatherConditions = 'sunny' | 'partly cloudy' | 'cloudy' | 'rainy' | 'windy';

/** Result of `get_weather`. */
export interface CurrentWeather {
  location: string;
  temperature: number;
  units: TemperatureUnits;
  conditions: WeatherConditions;
  /** Relative humidity in percent, 30 to 79. */
  humidity: number;
  /** 5 to 34. */
  wind_speed_kmh: number;
}

/** One day of a `get_forecast` result. */
export interface ForecastDay {
  /** `YYYY-MM-DD`. */
  date: string;
  high: number;
  low: number;
  conditions: WeatherConditions;
  /** 0 to 99. */
  precipitation_chance: number;
}

/** Result of `get_forecast`. */
export interface WeatherForecast {
  location: string;
  units: TemperatureUnits;
  days: number;
  forecast: ForecastDay[];
}

/** Schema of {@link TestWeatherConfig}. */
export const testWeatherConfigSchema = z.object({
  /**
   * First day of forecasts, `YYYY-MM-DD`. Defaults to the current UTC date; set it to make
   * forecast dates reproducible.
   */
  startDate: z.iso.date().optional(),
});

/** Per-session configuration of {@link testWeatherCapability}; everything is optional. */
export type TestWeatherConfig = z.infer<typeof testWeatherConfigSchema>;

const CONDITIONS: readonly WeatherConditions[] = [
  'sunny',
  'partly cloudy',
  'cloudy',
  'rainy',
  'windy',
];

const MAX_FORECAST_DAYS = 7;
const DAY_MS = 24 * 60 * 60 * 1000;

const encoder = new TextEncoder();

/** Sum of the location's UTF-8 bytes as an unsigned 32-bit integer: the seed of all values. */
function locationHash(location: string): number {
  let hash = 0;
  for (const byte of encoder.encode(location)) hash = (hash + byte) >>> 0;
  return hash;
}

function temperature(seed: number, units: TemperatureUnits): number {
  const celsius = (seed % 35) + 5;
  return units === 'fahrenheit' ? (celsius * 9) / 5 + 32 : celsius;
}

function conditions(seed: number): WeatherConditions {
  return CONDITIONS[seed % CONDITIONS.length] as WeatherConditions;
}

const location = z
  .string()
  .describe("City or place name, for example 'New York', 'London' or 'Tokyo'");
const units = z
  .enum(['celsius', 'fahrenheit'])
  .optional()
  .describe("Temperature units; 'celsius' when omitted");

const getWeatherInput = z.strictObject({ location, units });

const getWeatherTool = defineTool<typeof getWeatherInput, TestWeatherConfig>({
  name: 'get_weather',
  description:
    'Returns the current weather of a place: temperature, conditions, humidity and wind speed.',
  inputSchema: getWeatherInput,
  idempotent: true,
  execute: (input): CurrentWeather => {
    const seed = locationHash(input.location);
    const chosenUnits = input.units ?? 'celsius';
    return {
      location: input.location,
      temperature: temperature(seed, chosenUnits),
      units: chosenUnits,
      conditions: conditions(seed),
      humidity: (seed % 50) + 30,
      wind_speed_kmh: (seed % 30) + 5,
    };
  },
});

const getForecastInput = z.strictObject({
  location,
  days: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe('Number of days to forecast, 1 to 7 (larger values give 7); 3 when omitted'),
  units,
});

const getForecastTool = defineTool<typeof getForecastInput, TestWeatherConfig>({
  name: 'get_forecast',
  description:
    'Returns the weather forecast of a place for the next days (3 unless asked, at most 7).',
  inputSchema: getForecastInput,
  idempotent: true,
  execute: (input, context): WeatherForecast => {
    const seed = locationHash(input.location);
    const chosenUnits = input.units ?? 'celsius';
    const days = Math.min(input.days ?? 3, MAX_FORECAST_DAYS);
    const start = context.config?.startDate
      ? Date.parse(`${context.config.startDate}T00:00:00Z`)
      : Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
    const forecast: ForecastDay[] = [];
    for (let offset = 0; offset < days; offset++) {
      const daySeed = (seed + offset * 7) >>> 0;
      const high = temperature(daySeed, chosenUnits);
      forecast.push({
        date: new Date(start + offset * DAY_MS).toISOString().slice(0, 10),
        high,
        low: high - 8 - (daySeed % 5),
        conditions: conditions(daySeed),
        precipitation_chance: daySeed % 100,
      });
    }
    return { location: input.location, units: chosenUnits, days, forecast };
  },
});

/**
 * The `test_weather` capability: fake weather tools `get_weather` and `get_forecast` for
 * exercising tool calling. Values depend only on the location's name (and the day offset), so
 * the same question always gets the same answer; forecast dates start at the configured
 * `startDate` or today (UTC). Adds nothing to the system prompt.
 */
export const testWeatherCapability: Capability<TestWeatherConfig> = defineCapability({
  id: TEST_WEATHER_CAPABILITY_ID,
  name: 'Test Weather',
  description:
    'Testing capability: fake weather tools (get_weather, get_forecast) for tool-calling tests.',
  configSchema: testWeatherConfigSchema,
  tools: [getWeatherTool, getForecastTool],
});
