/**
 * The features the controller starts, in order (stopped in reverse). The device-aware policy
 * feature goes before `inference`, so that it has set `ctx.levels` when requests start arriving.
 */
import type { FeatureFactory } from './context.js';
import { HealthFeature } from './health.js';
import { InferenceFeature } from './inference.js';
import { policyFeature } from './policy.js';
import { watchdogFeature } from './watchdog.js';

export const DEFAULT_FEATURES: readonly FeatureFactory[] = [
  (ctx) => new HealthFeature(ctx),
  policyFeature(),
  (ctx) => new InferenceFeature(ctx),
  watchdogFeature(),
];
