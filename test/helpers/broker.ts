/**
 * Broker fixtures for agent tests: the in-process aedes broker (3.1.1, the embedded path) and
 * Mosquitto (MQTT 5), behind one shape so that one behaviour suite runs over both.
 */
import { startBroker } from '../../agent/broker.js';
import { startMosquitto } from './mosquitto.js';

export interface TestBroker {
  readonly name: 'mosquitto' | 'aedes';
  readonly url: string;
  /** the protocol the agent ends up speaking with this broker */
  readonly protocol: 4 | 5;
  close(): Promise<void>;
}

export async function startTestBroker(name: 'mosquitto' | 'aedes'): Promise<TestBroker> {
  if (name === 'mosquitto') {
    const m = await startMosquitto();
    return { name, url: m.url, protocol: 5, close: () => m.close() };
  }
  const b = await startBroker({ port: 0 });
  return { name, url: b.url, protocol: 4, close: () => b.close() };
}
