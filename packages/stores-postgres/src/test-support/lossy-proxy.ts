import * as net from 'node:net';

/** ReadyForQuery: the server has finished the statement (and committed an implicit transaction). */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

/**
 * A TCP proxy in front of PostgreSQL that can lose one answer: once armed with a piece of SQL, it
 * forwards the next statement containing it, waits until the server has completed it, and then
 * cuts the connection instead of delivering the answer. The client sees a lost connection for a
 * write that was in fact committed: the ambiguous case a retry must not duplicate.
 */
export async function startLossyProxy(target: { host: string; port: number }) {
  let armed: string | undefined;
  let cut = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    let dropping = false;
    let pending = Buffer.alloc(0);
    client.on('data', (chunk) => {
      if (armed !== undefined && chunk.includes(armed)) {
        armed = undefined;
        dropping = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!dropping) {
        client.write(chunk);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      if (pending.includes(READY_FOR_QUERY)) {
        cut++;
        client.destroy();
        upstream.destroy();
      }
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    /** Loses the answer of the next statement whose text contains `sql`. */
    loseNextAnswerTo(sql: string): void {
      armed = sql;
    },
    /** How many answers were lost so far. */
    get answersLost(): number {
      return cut;
    },
    async close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
