import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeAdapterMessage, SESSION_EVENT } from '../../src/debug/tracker';

test('stops, frames, variables, output and exit become test-log records', () => {
    assert.deepEqual(describeAdapterMessage({ type: 'event', event: 'stopped', body: { reason: 'breakpoint', threadId: 1 } }), {
        event: 'dapStopped',
        reason: 'breakpoint',
        threadId: 1,
        description: undefined,
    });
    assert.deepEqual(
        describeAdapterMessage({
            type: 'response',
            command: 'stackTrace',
            success: true,
            body: { stackFrames: [{ id: 1, name: 'count_to', line: 9, source: { path: '/ws/programs/hello.c' } }, { id: 2, name: 'main', line: 20, source: { name: 'hello.c' } }] },
        }),
        { event: 'dapStackTrace', frames: [{ name: 'count_to', path: '/ws/programs/hello.c', line: 9 }, { name: 'main', path: 'hello.c', line: 20 }] },
    );
    assert.deepEqual(
        describeAdapterMessage({ type: 'response', command: 'variables', success: true, body: { variables: [{ name: 'i', value: '2', variablesReference: 0 }] } }),
        { event: 'dapVariables', variables: [{ name: 'i', value: '2' }] },
    );
    assert.deepEqual(describeAdapterMessage({ type: 'event', event: 'output', body: { category: 'stdout', output: 'hi\n' } }), {
        event: 'dapOutput',
        category: 'stdout',
        output: 'hi\n',
    });
    assert.deepEqual(describeAdapterMessage({ type: 'event', event: 'exited', body: { exitCode: 0 } }), { event: 'dapExited', exitCode: 0 });
    assert.deepEqual(describeAdapterMessage({ type: 'event', event: SESSION_EVENT, body: { sessionId: 's1' } }), { event: 'dapVirserverSession', sessionId: 's1' });
    assert.deepEqual(describeAdapterMessage({ type: 'response', command: 'launch', success: false, message: 'no GDB' }), {
        event: 'dapError',
        command: 'launch',
        message: 'no GDB',
    });
});

test('other traffic is not logged', () => {
    assert.equal(describeAdapterMessage({ type: 'event', event: 'module', body: {} }), undefined);
    assert.equal(describeAdapterMessage({ type: 'response', command: 'threads', success: true, body: {} }), undefined);
    assert.equal(describeAdapterMessage({ type: 'request', command: 'next' }), undefined);
    assert.equal(describeAdapterMessage('garbage'), undefined);
});
