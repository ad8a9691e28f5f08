// fleet-stats.mjs — what a promptcache node did between two snapshots of its
// /_promptcache/stats (bench/fleet.sh), as one tab-separated line:
//   requests (admin ones left out) hits_local hits_shared miss coalesced fleet_coalesced other
//   commands gets shared_errors shared_timeouts corrupt command_errors
//   leases_won leases_held takeovers follows_cut reconnects
// (other = requests that were neither hits, misses nor coalesced). The
// shared.* counters reach /stats about once a second: take the "after"
// snapshot at least 1.2 s after the last request. A missing or unreadable
// snapshot gives a line of "-".
//   node bench/fleet-stats.mjs BEFORE.json AFTER.json
import { readFileSync } from 'node:fs';

const load = (f) => {
  try {
    return JSON.parse(readFileSync(f, 'utf8'));
  } catch {
    return null;
  }
};
const [a, b] = process.argv.slice(2).map(load);
const FIELDS = [
  (s) => s.totals.requests - (s.totals.admin ?? 0), (s) => s.totals.hits_local ?? 0, (s) => s.totals.hits_shared ?? 0, (s) => s.totals.miss,
  (s) => s.totals.coalesced, (s) => s.totals.fleet_coalesced ?? 0,
  (s) => s.totals.requests - (s.totals.admin ?? 0) - s.totals.hit - s.totals.miss - s.totals.coalesced,
  (s) => s.shared?.commands ?? 0, (s) => s.shared?.ops?.get ?? 0, (s) => s.shared?.errors ?? 0, (s) => s.shared?.timeouts ?? 0,
  (s) => s.shared?.corrupt ?? 0, (s) => s.shared?.command_errors ?? 0, (s) => s.shared?.leases_won ?? 0,
  (s) => s.shared?.leases_held ?? 0, (s) => s.shared?.takeovers ?? 0, (s) => s.shared?.follows_cut ?? 0,
  (s) => s.shared?.reconnects ?? 0,
];
let out;
try {
  out = FIELDS.map((g) => g(b) - g(a));
  if (out.some((x) => !Number.isFinite(x))) throw new Error('bad');
} catch {
  out = FIELDS.map(() => '-');
}
console.log(out.join('\t'));
