export * from './driver-call.js';
export * from './http.js';
export * from './json.js';
