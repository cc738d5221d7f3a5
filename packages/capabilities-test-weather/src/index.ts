export {
  type CurrentWeather,
  type ForecastDay,
  TEST_WEATHER_CAPABILITY_ID,
  type TemperatureUnits,
  type TestWeatherConfig,
  testWeatherCapability,
  testWeatherConfigSchema,
  type WeatherConditions,
  type WeatherForecast,
} from './test-weather-capability.js';
