// A worker process: runs turn steps from the queue until it gets SIGTERM (or SIGINT).
import { openBackends, startHost } from './durable-host.js';
import { settingsFromEnvironment } from './settings.js';

const settings = settingsFromEnvironment();
const backends = openBackends(settings);
const host = await startHost(settings, backends);
await host.work({ concurrency: 4 });
console.log(`worker ${process.pid} is working the queue`);

const stop = async () => {
  await host.stop();
  await backends.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
