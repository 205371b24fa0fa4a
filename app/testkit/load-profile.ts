// How many clients a run wants at each moment: a load that rises from a few
// clients to a peak and falls back, as a staircase (steps, the count jumps
// and holds) or a ramp (the count climbs linearly, holds at the peak, and
// falls linearly). Pure: the run asks clientsAt(t) and resizes its Load.

export const PROFILE_SHAPES = ['steps', 'ramp'] as const;
export type ProfileShape = (typeof PROFILE_SHAPES)[number];

export interface ProfileOptions {
  readonly shape: ProfileShape;
  /** Clients at the start and at the end. */
  readonly from: number;
  readonly peak: number;
  /** steps: levels above `from` on the way up (the last is the peak), taken again on the way down. */
  readonly steps: number;
  /** Seconds at each level on the way up (the peak included), and at the first level unless startSeconds says otherwise. */
  readonly holdSeconds: number;
  /** Seconds at the first level, before the load first changes (default holdSeconds). */
  readonly startSeconds?: number;
  /** Seconds at each level on the way down (the final `from` included): scale-down waits out a stabilization window and goes a pod at a time. */
  readonly holdDownSeconds: number;
  /** ramp: seconds from `from` to the peak, and from the peak back. */
  readonly rampSeconds: number;
}

/** A level the load holds: from when it started moving there, when it got there, until when it stays. */
export interface Plateau {
  readonly clients: number;
  /** Seconds since the profile started when the load began to move to this level (= reachedAt for a step). */
  readonly changeAt: number;
  readonly reachedAt: number;
  readonly until: number;
  /** up: more clients than the level before; down: fewer; start: the first level. */
  readonly direction: 'start' | 'up' | 'down';
}

export interface LoadProfile {
  readonly options: ProfileOptions;
  /** Corners of the piecewise-linear curve: [seconds, clients]. */
  readonly points: readonly (readonly [number, number])[];
  readonly plateaus: readonly Plateau[];
  readonly durationSeconds: number;
}

export function loadProfile(options: ProfileOptions): LoadProfile {
  const { shape, from, peak, holdSeconds, holdDownSeconds } = options;
  if (!(from >= 0 && peak > from)) throw new Error(`a load profile needs 0 ≤ from < peak, got from ${from}, peak ${peak}`);
  const steps = shape === 'steps' ? Math.max(1, Math.round(options.steps)) : 1;
  const levels = Array.from({ length: steps }, (_, i) => Math.round(from + ((peak - from) * (i + 1)) / steps));
  const transition = shape === 'ramp' ? options.rampSeconds : 0;
  const plateaus: Plateau[] = [{ clients: from, changeAt: 0, reachedAt: 0, until: options.startSeconds ?? holdSeconds, direction: 'start' }];
  const climb = (clients: number, hold: number, direction: 'up' | 'down'): void => {
    const changeAt = plateaus.at(-1)!.until;
    plateaus.push({ clients, changeAt, reachedAt: changeAt + transition, until: changeAt + transition + hold, direction });
  };
  for (const level of levels) climb(level, holdSeconds, 'up');
  for (const level of [...levels.slice(0, -1).reverse(), from]) climb(level, holdDownSeconds, 'down');
  const points: [number, number][] = [];
  for (const plateau of plateaus) points.push([plateau.reachedAt, plateau.clients], [plateau.until, plateau.clients]);
  return { options, points, plateaus, durationSeconds: plateaus.at(-1)!.until };
}

/** The clients the profile wants `t` seconds after it started (whole clients; the last level after the end). */
export function clientsAt(profile: LoadProfile, t: number): number {
  const { points } = profile;
  if (t <= points[0]![0]) return points[0]![1];
  for (let i = 1; i < points.length; i++) {
    const [t1, c1] = points[i]!;
    if (t <= t1) {
      const [t0, c0] = points[i - 1]!;
      return Math.round(t1 === t0 ? c1 : c0 + ((c1 - c0) * (t - t0)) / (t1 - t0));
    }
  }
  return points.at(-1)![1];
}
