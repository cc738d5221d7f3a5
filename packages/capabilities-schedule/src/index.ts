export {
  DEFAULT_MAX_ACTIVE_SCHEDULES,
  SCHEDULE_CAPABILITY_ID,
  type ScheduleConfig,
  type ScheduleConfigInput,
  type ScheduleView,
  scheduleCapability,
  scheduleConfigSchema,
  scheduleView,
} from './schedule-capability.js';
