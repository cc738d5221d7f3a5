/**
 * Test helpers for everruns-ts HTTP drivers. This package is private (never published); a
 * driver lists it as a devDependency and imports it from its tests only.
 */
export {
  ADD_TOOL,
  collect,
  MULTIPLY_TOOL,
  mathRequest,
  newMessage,
  rejection,
} from './driver-fixtures.js';
export {
  byteByByteFetch,
  closeFakeServers,
  type FakeServer,
  json,
  type RecordedRequest,
  type Reply,
  slowSse,
  splitAtRandomBytes,
  splitBytes,
  sse,
  stall,
  startFakeServer,
} from './fake-provider-server.js';
export {
  type LockstepSse,
  type LockstepStep,
  lockstepSse,
  readInLockstep,
} from './lockstep-stream.js';
