// Named runs of `npm run rollout`: a preset is a list of the runner's own
// options, so its report's command line says exactly what ran.
import { chartValues } from '../chart/values.js';

export const PRESETS = ['design-load'] as const;
export type Preset = (typeof PRESETS)[number];

/** The chart's design load: the HPA's target per pod (5,000 connections) on 3 replicas. */
export const DESIGN_LOAD = { replicas: 3, clientsPerReplica: 5000, secondsBetweenMessages: 10 } as const;

/** The runner options of a preset, drain timings read from the chart so they cannot disagree with it. */
export function presetArgs(preset: Preset): string[] {
  const values = chartValues();
  switch (preset) {
    case 'design-load':
      return [
        ...['--mode', 'rollout'],
        ...['--replicas', String(DESIGN_LOAD.replicas)],
        ...['--clients', String(DESIGN_LOAD.replicas * DESIGN_LOAD.clientsPerReplica)],
        ...['--rate', String(1 / DESIGN_LOAD.secondsBetweenMessages)],
        ...['--window', String(values.drain.windowSeconds)],
        ...['--close-timeout', String(values.drain.closeTimeoutSeconds)],
        ...['--prestop', String(values.drain.preStop.seconds)],
        // Long enough that every client sends a few messages before and after the rollout.
        ...['--duration', '60'],
        ...['--out', 'reports/design-load'],
      ];
  }
}
