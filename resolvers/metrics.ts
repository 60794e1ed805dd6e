// A volume's live I/O numbers: its engine's ControllerService.MetricsGet, polled every intervalMs for as
// long as someone is subscribed. The engine already reports per-second rates, so each sample is what
// the engine measured over its last second. The stream ends with an error when the volume is detached
// (or its engine stops answering), and never starts for a volume that is not attached.
import { credentials } from '@grpc/grpc-js';
import { createGraphQLError, Repeater } from 'graphql-yoga';
import { engineNameOf } from '../controllers/labels.js';
import { unary } from '../dataplane/grpc/unary.js';
import { ControllerServiceClient } from '../dataplane/proto/gen/engine.js';
import type { Engine } from '../model/engine.js';
import type { Store } from '../store/store.js';

export const METRICS_MIN_INTERVAL_MS = 200;
export const METRICS_DEFAULT_INTERVAL_MS = 1000;
/** Consecutive failed polls after which the stream ends with the last error. */
const MAX_FAILURES = 3;

export interface VolumeMetricsSample {
  volume: string;
  at: Date;
  readIOPS: number;
  writeIOPS: number;
  /** bytes/s */
  readThroughput: number;
  writeThroughput: number;
  /** mean, nanoseconds */
  readLatency: number;
  writeLatency: number;
}

const apiError = (code: string, message: string) => createGraphQLError(message, { extensions: { code } });

function engineAddress(e: Engine | undefined): string | undefined {
  return e && e.status.currentState === 'running' && e.status.ip && e.status.port
    ? `${e.status.ip}:${e.status.port}`
    : undefined;
}

/** Checks at once that `name` is attached (throws NotFound/InvalidState otherwise), then samples. */
export async function volumeMetrics(
  store: Store,
  name: string,
  intervalMs = METRICS_DEFAULT_INTERVAL_MS,
): Promise<AsyncIterable<VolumeMetricsSample>> {
  if (!Number.isInteger(intervalMs) || intervalMs < METRICS_MIN_INTERVAL_MS)
    throw apiError('ValidationError', `intervalMs must be a whole number >= ${METRICS_MIN_INTERVAL_MS}`);
  const volume = await store.get('Volume', name);
  if (!volume) throw apiError('NotFound', `Volume "${name}" not found`);
  const engineName = engineNameOf(name);
  const address = engineAddress(await store.get('Engine', engineName));
  if (volume.status.state !== 'attached' || !address)
    throw apiError(
      'InvalidState',
      `volume ${name} is ${volume.status.state}, not attached: metrics come from its running engine; attach it first`,
    );
  return new Repeater<VolumeMetricsSample>(async (push, stop) => {
    const client = new ControllerServiceClient(address, credentials.createInsecure());
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    let failures = 0;
    const tick = async () => {
      try {
        const [v, e] = await Promise.all([store.get('Volume', name), store.get('Engine', engineName)]);
        if (v?.status.state !== 'attached' || engineAddress(e) !== address) {
          stop(apiError('InvalidState', `volume ${name} is no longer attached (${v?.status.state ?? 'deleted'})`));
          return;
        }
        const m = await unary(client.metricsGet, client, {}, Math.max(2000, intervalMs));
        failures = 0;
        await push({
          volume: name,
          at: new Date(),
          readIOPS: m.readIops,
          writeIOPS: m.writeIops,
          readThroughput: m.readThroughput,
          writeThroughput: m.writeThroughput,
          readLatency: m.readLatency,
          writeLatency: m.writeLatency,
        });
      } catch (err) {
        if (++failures >= MAX_FAILURES) {
          stop(apiError('Unavailable', `engine of volume ${name} at ${address}: ${(err as Error).message}`));
          return;
        }
      }
      if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
    };
    void tick();
    await stop;
    stopped = true;
    clearTimeout(timer);
    client.close();
  });
}
