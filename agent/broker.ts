/**
 * The embedded broker for a single device without Mosquitto: aedes over TCP. aedes speaks MQTT
 * 3.1.1 (and 3.1) only, so the agent's transport falls back from 5 to 3.1.1 when it connects here.
 * In-memory persistence: sessions and retained messages do not survive a restart.
 */
import { Aedes } from 'aedes';
import { createServer, type Server } from 'node:net';
import { SedacError } from './errors.js';
import { silentLogger, type Logger } from './log.js';

export interface BrokerOptions {
  /** listen address; default 127.0.0.1 */
  host?: string;
  /** TCP port; 0 = any free port; default 1883 */
  port?: number;
  log?: Logger;
}

export interface EmbeddedBroker {
  readonly host: string;
  readonly port: number;
  /** mqtt://host:port */
  readonly url: string;
  /** Stop listening, disconnect clients. */
  close(): Promise<void>;
}

export async function startBroker(opts: BrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = opts.host ?? '127.0.0.1';
  const log = (opts.log ?? silentLogger).child({ part: 'broker' });
  const aedes = await Aedes.createBroker();
  const server: Server = createServer(aedes.handle);
  aedes.on('clientError', (client, err) => log.debug('broker client error', { client: client.id, err: err.message }));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 1883, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((r) => aedes.close(() => r()));
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new SedacError('E_CONFIG_INVALID', `embedded broker cannot listen on ${host}:${opts.port ?? 1883}: ${code}`);
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 1883);
  log.info('embedded broker listening', { host, port, protocol: '3.1.1' });
  return {
    host,
    port,
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        aedes.close(() => server.close(() => resolve()));
        // sockets of connected clients are closed by aedes.close; server.close waits for them
      }),
  };
}
