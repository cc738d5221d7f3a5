export {
  type InstrumentableRuntime,
  type InstrumentedEventBus,
  instrumentEventBus,
  instrumentRuntime,
  type RuntimeTracing,
} from './instrument.js';
export {
  formatTraceparent,
  OTEL_SCOPE_NAME,
  type OtelTracingOptions,
  parseTraceparent,
  TRACE_CONTEXT_KEY_PREFIX,
  TurnTracer,
} from './turn-tracer.js';
