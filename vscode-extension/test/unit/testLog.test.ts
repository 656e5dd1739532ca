import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { TestLog } from '../../src/testLog';

test('with the variable set, each event is one JSON line', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'virserver-log-')), 'log.jsonl');
    const log = TestLog.fromEnvironment({ VIRSERVER_EXTENSION_TEST_LOG: file });
    assert.ok(log.enabled);
    log.write({ event: 'activated' });
    log.write({ event: 'sessionsRefreshed', count: 2 });
    const records = readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(records.map((record) => record.event), ['activated', 'sessionsRefreshed']);
    assert.equal(records[1]?.count, 2);
    assert.equal(typeof records[0]?.time, 'string');
});

test('without the variable nothing is written', () => {
    const log = TestLog.fromEnvironment({});
    assert.equal(log.enabled, false);
    log.write({ event: 'activated' });
});

test('an unwritable file disables the log instead of throwing', () => {
    const log = new TestLog('/nonexistent-dir/log.jsonl');
    const original = console.error;
    console.error = () => undefined;
    try {
        log.write({ event: 'activated' });
    } finally {
        console.error = original;
    }
    assert.equal(log.enabled, false);
});
