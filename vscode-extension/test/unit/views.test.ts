// The Sessions and Jobs views and the UART terminal against the fake server, with the
// stand-in vscode module.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { GraphQLClient } from '../../src/api/graphqlClient';
import type { SessionEvent } from '../../src/api/queries';
import { Connection } from '../../src/settings';
import { TestLog } from '../../src/testLog';
import { toTerminalText, UartPseudoterminal } from '../../src/uart/uartTerminal';
import { JobItem, JobsProvider } from '../../src/views/jobsView';
import { SessionItem, SessionsProvider } from '../../src/views/sessionsView';
import { stubState } from '../stub/vscode';
import { startFakeServer, stream, unreachableUrl, type FakeServer } from './fakeServer';

const session = (id: string, state: string, gdbAddress: string | null) => ({
    id,
    name: `session-${id}`,
    state,
    exitCode: null,
    stateReason: null,
    coverage: false,
    gdbAddress,
    board: { id: 'mps2-an385' },
    currentProgram: { name: 'hello.elf' },
});

let server: FakeServer;
let state = 'RUNNING';
const sent: string[] = [];
const logFile = path.join(mkdtempSync(path.join(tmpdir(), 'virserver-views-')), 'log.jsonl');
const testLog = new TestLog(logFile);

function logged(): Record<string, unknown>[] {
    return readFileSync(logFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function until(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!condition()) {
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
}

before(async () => {
    server = await startFakeServer({
        query: {
            sessions: () => [session('s1', state, state === 'RUNNING' ? '127.0.0.1:3333' : null), session('s2', 'STOPPED', null)],
            jobs: () => ({ nodes: [{ id: 'j1', name: 'smoke', state: 'PASSED', failureReason: null, exitCode: 0, coverage: true, programName: 'hello.elf', boardTemplate: 'mps2-an385', session: { id: 's2' } }], hasNextPage: false }),
        },
        mutation: {
            sendUartInput: ({ data }: { data: string }) => {
                sent.push(data);
                return true;
            },
        },
        subscription: {
            sessionEvents: ({ sessionId }: { sessionId: string }) => {
                if (sessionId !== 's1') {
                    return stream<{ sessionEvents: SessionEvent }>([]);
                }
                state = 'EXITED';
                return stream<{ sessionEvents: Partial<SessionEvent> }>([
                    { sessionEvents: { sessionId: 's1', kind: 'EXITED', state: 'EXITED', exitCode: 0, at: new Date().toISOString() } as Partial<SessionEvent> },
                ]);
            },
            uartOutput: () => stream([{ uartOutput: { seq: 0, data: 'done\n', dropped: 0 } }, { uartOutput: { seq: 3, data: 'late\n', dropped: 2 } }]),
        },
    });
    stubState.configuration.set('virserver.serverUrl', server.url);
});

after(async () => {
    await server.close();
});

test('the Sessions view lists sessions and follows their events', async () => {
    const connection = new Connection();
    const sessions = new SessionsProvider(connection, testLog);
    let changes = 0;
    sessions.onDidChangeTreeData(() => changes++);
    await sessions.refresh();
    const items = sessions.getChildren();
    assert.deepEqual(items.map((item) => [item.label, item.contextValue]), [
        ['session-s1', 'session.powered'],
        ['session-s2', 'session.off'],
    ]);
    assert.ok(items[0] instanceof SessionItem);
    assert.match(items[0].tooltip as string, /GDB: 127\.0\.0\.1:3333/);
    await until(() => sessions.find('s1')?.state === 'EXITED', 'the EXITED event');
    await until(() => logged().some((record) => record.event === 'sessionEvent' && record.kind === 'EXITED'), 'the logged event');
    assert.ok(changes >= 2);
    const refreshed = logged().find((record) => record.event === 'sessionsRefreshed');
    assert.equal(refreshed?.count, 2);
    sessions.dispose();
    connection.dispose();
});

test('an unreachable server shows as a message in the Sessions view', async () => {
    const url = await unreachableUrl();
    stubState.configuration.set('virserver.serverUrl', url);
    const connection = new Connection();
    const sessions = new SessionsProvider(connection, testLog);
    await assert.rejects(sessions.refresh(), /unreachable/);
    const [item] = sessions.getChildren();
    assert.ok((item?.label as string).startsWith(`VirServer at ${url} is unreachable`));
    sessions.dispose();
    connection.dispose();
    stubState.configuration.set('virserver.serverUrl', server.url);
});

test('the Jobs view shows verdicts', async () => {
    const connection = new Connection();
    const jobs = new JobsProvider(connection);
    await jobs.refresh();
    const [job] = jobs.getChildren();
    assert.ok(job instanceof JobItem);
    assert.equal(job.description, 'passed');
    assert.equal(job.contextValue, 'job.coverage');
    jobs.dispose();
    connection.dispose();
});

test('the UART terminal writes output with CR LF and sends input', async () => {
    assert.equal(toTerminalText('a\nb\r\nc'), 'a\r\nb\r\nc');
    const client = new GraphQLClient(server.url);
    const terminal = new UartPseudoterminal(client, 's1', testLog);
    const written: string[] = [];
    terminal.onDidWrite((text) => written.push(text));
    terminal.open();
    await until(() => written.join('').includes('late'), 'UART output');
    const screen = written.join('');
    assert.match(screen, /done\r\n/);
    assert.match(screen, /\[2 chunks dropped\]/);
    terminal.handleInput('q');
    await until(() => sent.includes('q'), 'the input mutation');
    assert.ok(logged().some((record) => record.event === 'uartBytes' && record.text === 'done\n'));
    terminal.close();
    client.dispose();
});
