// Preloaded into the controller by `npm run bench:scale -- --alloc-prof <dir>` (NODE_OPTIONS
// --import): V8's sampling heap profiler over the whole run, objects the GC already collected
// included, so it shows what the controller allocates (what its garbage collection pays for),
// not only what it holds. Written as <dir>/alloc-<pid>.heapprofile when the process exits; open
// it in Chrome DevTools (Memory) or read its tree of call frames and self sizes.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.SNAPCRON_ALLOC_PROF_DIR ?? '.';
const session = new Session();
session.connect();
session.post('HeapProfiler.enable');
session.post('HeapProfiler.startSampling', {
  samplingInterval: 16_384,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
// An in-process session answers synchronously, so this runs to the end inside 'exit'.
process.on('exit', () => {
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err) process.stderr.write(`alloc-profile: ${err.message}\n`);
    else writeFileSync(`${dir}/alloc-${process.pid}.heapprofile`, JSON.stringify(result.profile));
  });
});
