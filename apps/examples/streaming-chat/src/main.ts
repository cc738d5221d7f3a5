import { startStreamingChatServer } from './server.js';

const port = process.env.PORT === undefined ? 3000 : Number(process.env.PORT);
const server = await startStreamingChatServer({ port });
console.log(`streaming chat: open ${server.url}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
