export {
  CURRENT_TIME_CAPABILITY_ID,
  type CurrentTimeFormat,
  type CurrentTimeResult,
  currentTimeCapability,
  isoInZone,
} from './current-time-capability.js';
