// The load profiles of the autoscale mode (testkit/load-profile.ts): the
// levels, when each starts and ends, and the clients wanted at any moment.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientsAt, loadProfile, type ProfileOptions } from '../../testkit/load-profile.js';

const STEPS: ProfileOptions = { shape: 'steps', from: 300, peak: 1500, steps: 2, holdSeconds: 45, holdDownSeconds: 120, rampSeconds: 60 };

describe('load profiles', () => {
  it('steps: up to the peak in equal steps and down the same way, holding each level', () => {
    const profile = loadProfile(STEPS);
    assert.deepEqual(
      profile.plateaus.map((p) => [p.direction, p.clients, p.changeAt, p.until]),
      [
        ['start', 300, 0, 45],
        ['up', 900, 45, 90],
        ['up', 1500, 90, 135],
        ['down', 900, 135, 255],
        ['down', 300, 255, 375],
      ],
    );
    assert.equal(profile.durationSeconds, 375);
    // A step jumps: the old level up to its end, the new one right after.
    assert.equal(clientsAt(profile, 0), 300);
    assert.equal(clientsAt(profile, 45), 300);
    assert.equal(clientsAt(profile, 45.01), 900);
    assert.equal(clientsAt(profile, 134), 1500);
    assert.equal(clientsAt(profile, 200), 900);
    assert.equal(clientsAt(profile, 1000), 300, 'the last level after the end');
  });

  it('one step is a square pulse; the first level may be shorter than the others', () => {
    const profile = loadProfile({ ...STEPS, from: 60, peak: 180, steps: 1, startSeconds: 4, holdSeconds: 10, holdDownSeconds: 15 });
    assert.deepEqual(
      profile.plateaus.map((p) => [p.clients, p.changeAt, p.until]),
      [
        [60, 0, 4],
        [180, 4, 14],
        [60, 14, 29],
      ],
    );
    assert.equal(profile.durationSeconds, 29);
  });

  it('ramp: climbs linearly to the peak, holds, falls linearly, holds', () => {
    const profile = loadProfile({ ...STEPS, shape: 'ramp' });
    assert.deepEqual(
      profile.plateaus.map((p) => [p.direction, p.clients, p.changeAt, p.reachedAt, p.until]),
      [
        ['start', 300, 0, 0, 45],
        ['up', 1500, 45, 105, 150],
        ['down', 300, 150, 210, 330],
      ],
    );
    assert.equal(clientsAt(profile, 75), 900, 'half-way up the ramp');
    assert.equal(clientsAt(profile, 120), 1500);
    assert.equal(clientsAt(profile, 165), 1200, 'a quarter of the way down');
  });

  it('refuses a peak that is not above the start', () => {
    assert.throws(() => loadProfile({ ...STEPS, peak: 300 }), /from < peak/);
  });
});
