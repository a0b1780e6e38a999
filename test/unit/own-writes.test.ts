/**
 * OwnWrites tells the echoes of this process's writes from news, whichever comes first: the
 * write's answer or its watch event (they travel on different connections).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CREATE_ECHO_MS, MAX_CREATES, OwnWrites } from '../../src/controller/own-writes.ts';

function setup(start = 0): { own: OwnWrites; news: string[]; clock: { t: number } } {
  const clock = { t: start };
  const news: string[] = [];
  return {
    own: new OwnWrites(
      () => clock.t,
      (k) => news.push(k),
    ),
    news,
    clock,
  };
}

describe('OwnWrites: creates', () => {
  it("a create's ADDED event is an echo once, before or after its answer; another name is news", () => {
    const { own } = setup();
    own.creating('snapshot', 'db', 'a');
    expect(own.isCreateEcho('snapshot', 'db', 'a')).toBe(true);
    expect(own.isCreateEcho('snapshot', 'db', 'a')).toBe(false); // answered once
    expect(own.isCreateEcho('snapshot', 'db', 'b')).toBe(false);
    own.creating('snapshot', 'db', 'c');
    expect(own.isCreateEcho('group', 'db', 'c')).toBe(false); // another kind
    expect(own.isCreateEcho('snapshot', 'other', 'c')).toBe(false); // another namespace
  });

  it('a failed create makes its name news (someone else made that object)', () => {
    const { own } = setup();
    own.creating('snapshot', 'db', 'a');
    own.createFailed('snapshot', 'db', 'a');
    expect(own.isCreateEcho('snapshot', 'db', 'a')).toBe(false);
  });

  it('forgets a create whose event never came after CREATE_ECHO_MS, and past MAX_CREATES the oldest', () => {
    const { own, clock } = setup();
    own.creating('snapshot', 'db', 'lost');
    clock.t += CREATE_ECHO_MS + 1;
    own.creating('snapshot', 'db', 'new');
    expect(own.isCreateEcho('snapshot', 'db', 'lost')).toBe(false);
    expect(own.isCreateEcho('snapshot', 'db', 'new')).toBe(true);
    for (let i = 0; i <= MAX_CREATES; i++) own.creating('snapshot', 'db', `s${i}`);
    expect(own.isCreateEcho('snapshot', 'db', 's0')).toBe(false);
    expect(own.isCreateEcho('snapshot', 'db', `s${MAX_CREATES}`)).toBe(true);
  });
});

describe('OwnWrites: deletes', () => {
  it("a delete's events (marked for deletion, then gone) are echoes; gone ends it", () => {
    const { own } = setup();
    own.deleting('snapshot', 'db', 'a');
    // Finalizers run: updates that carry the deletion mark, then the object goes.
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'update', true)).toBe(true);
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'update', true)).toBe(true);
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'delete', true)).toBe(true);
    // Gone: an object of that name made again is someone else's news.
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'update', true)).toBe(false);
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'delete', false)).toBe(false);
    // Other names, kinds and namespaces are news.
    own.deleting('snapshot', 'db', 'b');
    expect(own.isDeleteEcho('snapshot', 'db', 'c', 'delete', false)).toBe(false);
    expect(own.isDeleteEcho('group', 'db', 'b', 'delete', false)).toBe(false);
    expect(own.isDeleteEcho('snapshot', 'other', 'b', 'delete', false)).toBe(false);
  });

  it('an update not marked for deletion is news (a change racing the delete), and a failed delete makes all news', () => {
    const { own } = setup();
    own.deleting('snapshot', 'db', 'a');
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'update', false)).toBe(false);
    own.deleteFailed('snapshot', 'db', 'a');
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'update', true)).toBe(false);
    expect(own.isDeleteEcho('snapshot', 'db', 'a', 'delete', false)).toBe(false);
  });

  it('forgets a delete whose event never came after CREATE_ECHO_MS', () => {
    const { own, clock } = setup();
    own.deleting('group', 'db', 'lost');
    clock.t += CREATE_ECHO_MS + 1;
    own.deleting('group', 'db', 'new');
    expect(own.isDeleteEcho('group', 'db', 'lost', 'delete', false)).toBe(false);
    expect(own.isDeleteEcho('group', 'db', 'new', 'delete', false)).toBe(true);
  });
});

describe('OwnWrites: cache events', () => {
  it('isEcho reads an add as a create echo and an update or delete as a delete echo', () => {
    const { own } = setup();
    own.creating('snapshot', 'db', 'a');
    own.deleting('snapshot', 'db', 'b');
    expect(own.isEcho('snapshot', 'add', { namespace: 'db', name: 'b' })).toBe(false);
    expect(own.isEcho('snapshot', 'add', { namespace: 'db', name: 'a' })).toBe(true);
    expect(own.isEcho('snapshot', 'update', { namespace: 'db', name: 'b' })).toBe(false);
    expect(own.isEcho('snapshot', 'update', { namespace: 'db', name: 'b', deletionTimestamp: 'now' })).toBe(
      true,
    );
    expect(own.isEcho('snapshot', 'delete', { namespace: 'db', name: 'b' })).toBe(true);
  });
});

describe('OwnWrites: status writes', () => {
  it('the event of the version a write answered is an echo, whichever comes first', () => {
    const a = setup();
    a.own.writingStatus('db/s');
    a.own.statusWritten('db/s', '7');
    expect(a.own.onUpdate('db/s', '7')).toBe('echo');
    expect(a.own.onUpdate('db/s', '8')).toBe('news');

    const b = setup();
    b.own.writingStatus('db/s');
    expect(b.own.onUpdate('db/s', '7')).toBe('held');
    b.own.statusWritten('db/s', '7');
    expect(b.news).toEqual([]);
    expect(b.own.onUpdate('db/s', '7')).toBe('news'); // its echo was already seen
  });

  it("another writer's update that comes during a write is news once the write answers, or fails", () => {
    const a = setup();
    a.own.writingStatus('db/s');
    expect(a.own.onUpdate('db/s', '6')).toBe('held'); // an edit, before our write
    expect(a.own.onUpdate('db/s', '7')).toBe('held'); // our write
    a.own.statusWritten('db/s', '7');
    expect(a.news).toEqual(['db/s']);

    const b = setup();
    b.own.writingStatus('db/s');
    expect(b.own.onUpdate('db/s', '6')).toBe('held');
    b.own.statusWritten('db/s', undefined); // a conflict: the pass re-reads and writes again
    expect(b.news).toEqual(['db/s']);
  });

  it("any interleaving: exactly the updates other than the writes' own versions are news, each write's echo at most once", () => {
    // Writes answer versions w1..wn in order; others' updates o1..om interleave anywhere.
    const step = fc.constantFrom('write', 'answer', 'ownEvent', 'otherEvent');
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const { own, news } = setup();
        const key = 'db/s';
        let rv = 0;
        let inFlight = 0;
        const answered: string[] = []; // versions our writes got, whose events have not come
        const unanswered: string[] = []; // our versions whose events came before the answer
        let others = 0;
        let newsExpected = 0;
        let heldOthers = 0;
        for (const s of steps) {
          if (s === 'write') {
            own.writingStatus(key);
            inFlight++;
            unanswered.push(String(++rv));
          } else if (s === 'answer' && inFlight > 0) {
            inFlight--;
            const v = unanswered.shift() as string;
            own.statusWritten(key, v);
            answered.push(v);
            if (inFlight === 0 && heldOthers > 0) {
              newsExpected++;
              heldOthers = 0;
            }
          } else if (s === 'ownEvent' && answered.length > 0) {
            expect(own.onUpdate(key, answered.pop() as string)).toBe('echo');
            answered.length = 0; // older versions' events never come once a newer one has
          } else if (s === 'otherEvent') {
            others++;
            const verdict = own.onUpdate(key, `other-${others}`);
            if (inFlight > 0) {
              expect(verdict).toBe('held');
              heldOthers++;
            } else {
              expect(verdict).toBe('news');
            }
          }
        }
        expect(news.length).toBe(newsExpected);
      }),
      { numRuns: 500 },
    );
  });
});
