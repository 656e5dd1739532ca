import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GraphQLError, parse, validate } from 'graphql';
import { AUTH_HINT, GraphQLClient, graphqlEndpoint, VirServerError, websocketEndpoint } from '../../src/api/graphqlClient';
import { coverageLcov, DOCUMENTS, listJobs, listSessions, powerSession, sendUartInput, subscribeUart, type UartChunk } from '../../src/api/queries';
import { loadSchema, startFakeServer, stream, unreachableUrl, type FakeServer } from './fakeServer';

// Fields the server side is adding now (`virserver dap`, Session.dapAddress, the
// debugger query); until schema.graphql has them their documents are reported as todo.
const PENDING_FIELDS: Record<string, string> = { debugger: 'QueryRoot.debugger', dapAddress: 'Session.dapAddress' };

const schema = loadSchema();
for (const [name, document] of Object.entries(DOCUMENTS)) {
    const errors = validate(schema, parse(document));
    const pending = PENDING_FIELDS[name];
    if (pending !== undefined && errors.length > 0) {
        test(`document ${name} validates against schema.graphql`, { todo: `${pending} is not in schema.graphql yet` }, () => {
            assert.deepEqual(errors.map((error) => error.message), []);
        });
        continue;
    }
    test(`document ${name} validates against schema.graphql`, () => {
        assert.deepEqual(errors.map((error) => error.message), []);
    });
}

test('endpoints are derived from the server URL', () => {
    assert.equal(graphqlEndpoint('http://127.0.0.1:8080').toString(), 'http://127.0.0.1:8080/graphql');
    assert.equal(graphqlEndpoint('http://h:1/graphql').toString(), 'http://h:1/graphql');
    assert.equal(graphqlEndpoint('https://h/base/').toString(), 'https://h/base/graphql');
    assert.equal(websocketEndpoint('https://h:9'), 'wss://h:9/graphql');
    assert.equal(websocketEndpoint('http://h:9'), 'ws://h:9/graphql');
    assert.throws(() => graphqlEndpoint('127.0.0.1:8080'), /not an http\(s\) URL|not a URL/);
    assert.throws(() => graphqlEndpoint('not a url'), /is not a URL/);
});

const session = {
    id: 's1',
    name: 'hello',
    state: 'RUNNING',
    exitCode: null,
    stateReason: null,
    coverage: true,
    gdbAddress: '127.0.0.1:3333',
    board: { id: 'mps2-an385' },
    currentProgram: { name: 'hello.elf' },
};
let server: FakeServer;
const uartInput: string[] = [];

before(async () => {
    server = await startFakeServer({
        query: {
            sessions: () => [session],
            jobs: () => ({ nodes: [{ id: 'j1', name: 'smoke', state: 'FAILED', failureReason: 'exit code 3', exitCode: 3, coverage: false, programName: 'exit3.elf', boardTemplate: 'mps2-an385', session: null }], hasNextPage: false }),
            coverage: ({ sessionId }: { sessionId?: string }) => {
                if (sessionId === 'locked') {
                    throw new GraphQLError('no API key was sent', { extensions: { code: 'UNAUTHENTICATED' } });
                }
                if (sessionId !== 's1') {
                    throw new Error(`no such session ${String(sessionId)}`);
                }
                return { lcov: 'SF:a.c\nDA:1,1\nend_of_record\n' };
            },
        },
        mutation: {
            powerSession: ({ action }: { action: string }) => ({ ...session, state: action === 'OFF' ? 'STOPPED' : 'RUNNING', gdbAddress: null }),
            sendUartInput: ({ data }: { data: string }) => {
                uartInput.push(data);
                return true;
            },
        },
        subscription: {
            uartOutput: () =>
                stream<{ uartOutput: UartChunk }>([
                    { uartOutput: { seq: 0, data: 'Hello from VirServer\n', dropped: 0 } },
                    { uartOutput: { seq: 1, data: 'counting: 1 2 3\n', dropped: 0 } },
                ]),
        },
    });
});

after(async () => {
    await server.close();
});

test('queries and mutations return typed results', async () => {
    const client = new GraphQLClient(server.url);
    assert.deepEqual(await listSessions(client), [session]);
    const [job] = await listJobs(client);
    assert.equal(job?.state, 'FAILED');
    assert.equal((await powerSession(client, 's1', 'OFF')).state, 'STOPPED');
    assert.equal(await coverageLcov(client, { sessionId: 's1' }), 'SF:a.c\nDA:1,1\nend_of_record\n');
    await sendUartInput(client, 's1', 'q');
    assert.deepEqual(uartInput, ['q']);
});

test('a GraphQL error becomes a VirServerError with its message', async () => {
    const client = new GraphQLClient(server.url);
    await assert.rejects(coverageLcov(client, { sessionId: 'nope' }), (error: unknown) => error instanceof VirServerError && error.message === 'no such session nope');
});

test('a server that wants a key says how to give it one', async () => {
    const client = new GraphQLClient(server.url);
    await assert.rejects(
        coverageLcov(client, { sessionId: 'locked' }),
        (error: unknown) => error instanceof VirServerError && error.code === 'UNAUTHENTICATED' && error.message === `no API key was sent: ${AUTH_HINT}`,
    );
});

test('an unreachable server is reported as such', async () => {
    const url = await unreachableUrl();
    const client = new GraphQLClient(url);
    await assert.rejects(listSessions(client), (error: unknown) => error instanceof VirServerError && error.code === 'UNREACHABLE' && error.message.startsWith(`VirServer at ${url} is unreachable (connect ECONNREFUSED`));
});

test('subscriptions deliver every chunk and complete', async () => {
    const client = new GraphQLClient(server.url);
    const chunks: string[] = [];
    await new Promise<void>((resolve, reject) => {
        subscribeUart(client, 's1', { next: ({ uartOutput }) => chunks.push(uartOutput.data), error: reject, complete: resolve });
    });
    client.dispose();
    assert.deepEqual(chunks, ['Hello from VirServer\n', 'counting: 1 2 3\n']);
});

test('an API key goes with every request and every WebSocket', async () => {
    const client = new GraphQLClient(server.url, { token: 'vsk_test' });
    const before = server.requests.length;
    await listSessions(client);
    assert.equal(server.requests[before]?.authorization, 'Bearer vsk_test');
    await new Promise<void>((resolve, reject) => {
        subscribeUart(client, 's1', { next: () => {}, error: reject, complete: resolve });
    });
    client.dispose();
    assert.deepEqual(server.connections.at(-1), { authorization: 'Bearer vsk_test' });
    // Without one, nothing is sent.
    const anonymous = new GraphQLClient(server.url);
    await listSessions(anonymous);
    assert.equal(server.requests.at(-1)?.authorization, undefined);
});
