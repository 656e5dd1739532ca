// DAP end to end with @vscode/debugadapter-testsupport against a real server, QEMU and
// GDB: `virserver dap` on stdio (launch, a breakpoint on a source line, stack trace,
// scopes and variables, evaluate, next, step in, disconnect), then two clients at once
// on one session's own DAP endpoint (`dapAddress`). Run by scripts/test-vscode:
//   VIRSERVER_BIN=/abs/target/debug/virserver VIRSERVER_SERVER_URL=http://127.0.0.1:8080 \
//     node --test vscode-extension/test/dap/dap.test.mjs
// On a failure the test prints the DAP traffic of each client and the adapter's stderr.
/* global FormData, Blob */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import testsupport from '@vscode/debugadapter-testsupport';

const { DebugClient } = testsupport;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = process.env.VIRSERVER_BIN;
const server = process.env.VIRSERVER_SERVER_URL;
const firmware = (name) => path.join(root, 'examples/firmware', name);
const helloC = firmware('programs/hello.c');
const TIMEOUT = 120_000;

/** A DebugClient that keeps its DAP traffic, for the failure report. */
class TracedClient extends DebugClient {
    constructor(name, ...args) {
        super(...args);
        this.name = name;
        this.traffic = [];
        this.stderr = '';
        this.defaultTimeout = TIMEOUT;
    }
    doSend(command, args, clb) {
        this.traffic.push(`-> ${JSON.stringify({ command, arguments: args })}`);
        super.doSend(command, args, clb);
    }
    dispatch(body) {
        this.traffic.push(`<- ${body}`);
        super.dispatch(body);
    }
    async start(port) {
        await super.start(port);
        this._adapterProcess?.stderr.on('data', (data) => (this.stderr += data.toString()));
    }
    report() {
        const tail = this.traffic.slice(-60).map((line) => (line.length > 2000 ? `${line.slice(0, 2000)}…` : line));
        let text = `--- DAP traffic of ${this.name} (last ${tail.length} of ${this.traffic.length}):\n${tail.join('\n')}\n`;
        if (this.stderr) text += `--- stderr of ${this.name}:\n${this.stderr.slice(-4000)}\n`;
        return text;
    }
}

/** Rejects when `promise` takes longer than `ms` (requests of testsupport have no timeout). */
function within(promise, what, ms = TIMEOUT) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms))),
    ]).finally(() => clearTimeout(timer));
}

/** Runs `body` with the clients it creates; on failure prints their traffic. */
async function traced(body) {
    const clients = [];
    try {
        await body(clients);
    } catch (error) {
        for (const client of clients) console.error(client.report());
        throw error;
    } finally {
        for (const client of clients) client.stopAdapter();
    }
}

async function graphql(query, variables = {}) {
    const response = await fetch(`${server}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
    });
    const json = await response.json();
    assert.equal(json.errors, undefined, `GraphQL error: ${JSON.stringify(json.errors)}`);
    return json.data;
}

async function upload(session, file) {
    const form = new FormData();
    form.append('operations', JSON.stringify({
        query: 'mutation($s: ID!, $f: Upload!) { uploadProgram(sessionId: $s, file: $f) { id } }',
        variables: { s: session, f: null },
    }));
    form.append('map', JSON.stringify({ 0: ['variables.f'] }));
    form.append('0', new Blob([await readFile(file)]), path.basename(file));
    const json = await (await fetch(`${server}/graphql`, { method: 'POST', body: form })).json();
    assert.equal(json.errors, undefined, `upload: ${JSON.stringify(json.errors)}`);
}

async function topFrame(dc, threadId) {
    const trace = await within(dc.stackTraceRequest({ threadId, startFrame: 0, levels: 20 }), 'stackTrace');
    assert.ok(trace.body.stackFrames.length > 0, 'no stack frames');
    return trace.body.stackFrames;
}

/** Every variable of the frame's scopes but the registers, by name. */
async function frameVariables(dc, frameId) {
    const scopes = (await within(dc.scopesRequest({ frameId }), 'scopes')).body.scopes;
    const variables = new Map();
    for (const scope of scopes) {
        if (scope.name === 'Registers') continue;
        const response = await within(dc.variablesRequest({ variablesReference: scope.variablesReference }), 'variables');
        for (const variable of response.body.variables) variables.set(variable.name, { scope: scope.name, value: variable.value });
    }
    return { scopes: scopes.map((scope) => scope.name), variables };
}

async function waitAfter(dc, event, request, what) {
    const arrived = dc.waitForEvent(event);
    await within(request(), what);
    return await arrived;
}

test('launch through `virserver dap`: breakpoint, stack, variables, evaluate, next, step in, disconnect', { timeout: 5 * TIMEOUT }, async () => {
    assert.ok(bin && server, 'set VIRSERVER_BIN and VIRSERVER_SERVER_URL');
    await traced(async (clients) => {
        const dc = new TracedClient('virserver dap', bin, 'dap', 'virserver', {
            cwd: root,
            env: { ...process.env, VIRSERVER_SERVER: server },
        });
        clients.push(dc);
        await dc.start();
        const init = await within(dc.initializeRequest(), 'initialize');
        assert.equal(init.body?.supportsConfigurationDoneRequest, true, 'configurationDone is supported');

        // GDB answers launch only after configurationDone.
        const initialized = dc.waitForEvent('initialized');
        const launch = within(dc.launchRequest({
            board: 'mps2-an385',
            program: firmware('bin/hello-mps2-an385.elf'),
            stopOnEntry: false,
            cwd: root,
        }), 'launch');
        launch.catch(() => {}); // awaited below; an early rejection must not go unhandled
        await initialized;
        const breakpoints = await within(dc.setBreakpointsRequest({
            source: { path: helloC },
            breakpoints: [{ line: 19 }],
        }), 'setBreakpoints');
        assert.equal(breakpoints.body.breakpoints.length, 1);
        assert.equal(breakpoints.body.breakpoints[0].verified, true, JSON.stringify(breakpoints.body));
        const stopped = dc.waitForEvent('stopped');
        await within(dc.configurationDoneRequest(), 'configurationDone');
        await launch;

        // The first stop: the breakpoint in count_to(3), i = 1.
        const hit = await stopped;
        assert.equal(hit.body.reason, 'breakpoint', JSON.stringify(hit));
        const threadId = hit.body.threadId;
        let frames = await topFrame(dc, threadId);
        assert.equal(frames[0].name, 'count_to', JSON.stringify(frames[0]));
        assert.equal(frames[0].line, 19, JSON.stringify(frames[0]));
        assert.ok(frames[0].source?.path?.endsWith('examples/firmware/programs/hello.c'), JSON.stringify(frames[0]));
        assert.equal(frames[1]?.name, 'main', JSON.stringify(frames));

        const { scopes, variables } = await frameVariables(dc, frames[0].id);
        console.log(`scopes of count_to: ${scopes.join(', ')}; variables: ${JSON.stringify([...variables])}`);
        assert.ok(scopes.includes('Registers'), scopes.join());
        assert.deepEqual(variables.get('i'), { scope: 'Locals', value: '1' }, 'the local i');
        assert.deepEqual(variables.get('n'), { scope: 'Arguments', value: '3' }, 'the argument n');

        const evaluated = await within(dc.evaluateRequest({ expression: 'n * 10 + i', frameId: frames[0].id, context: 'watch' }), 'evaluate');
        assert.equal(evaluated.body.result, '31');

        // next: off line 19, still in count_to.
        const stepped = await waitAfter(dc, 'stopped', () => dc.nextRequest({ threadId }), 'next');
        assert.equal(stepped.body.reason, 'step', JSON.stringify(stepped));
        frames = await topFrame(dc, threadId);
        assert.equal(frames[0].name, 'count_to', JSON.stringify(frames[0]));
        assert.ok([17, 18].includes(frames[0].line), `after next: line ${frames[0].line}`);

        // continue: the breakpoint again, i = 2.
        const again = await waitAfter(dc, 'stopped', () => dc.continueRequest({ threadId }), 'continue');
        assert.equal(again.body.reason, 'breakpoint', JSON.stringify(again));
        frames = await topFrame(dc, threadId);
        assert.equal(frames[0].line, 19);
        assert.equal((await frameVariables(dc, frames[0].id)).variables.get('i')?.value, '2', 'i on the second stop');

        // step in: into uart_put_uint (common/print.c), called from count_to.
        const stepIn = await waitAfter(dc, 'stopped', () => dc.stepInRequest({ threadId }), 'stepIn');
        assert.equal(stepIn.body.reason, 'step', JSON.stringify(stepIn));
        frames = await topFrame(dc, threadId);
        assert.equal(frames[0].name, 'uart_put_uint', JSON.stringify(frames[0]));
        assert.ok(frames[0].source?.path?.endsWith('examples/firmware/common/print.c'), JSON.stringify(frames[0]));
        assert.equal(frames[1]?.name, 'count_to', JSON.stringify(frames));

        // disconnect: the adapter ends and its session is powered off.
        const { sessions } = await graphql('{ sessions { id state } }');
        const exited = new Promise((resolve) => dc._adapterProcess.once('exit', (code) => resolve(code)));
        await within(dc.disconnectRequest({ terminateDebuggee: true }), 'disconnect');
        assert.equal(await within(exited, 'the adapter to exit'), 0);
        for (const { id } of sessions) {
            const { session } = await graphql('query($id: ID!) { session(id: $id) { state } }', { id });
            if (session) assert.notEqual(session.state, 'RUNNING', `session ${id} after disconnect`);
        }
    });
});

test('two DAP clients at once on one session\'s dapAddress', { timeout: 5 * TIMEOUT }, async () => {
    assert.ok(bin && server, 'set VIRSERVER_BIN and VIRSERVER_SERVER_URL');
    const { createSession } = await graphql(
        'mutation($b: ID!) { createSession(input: {name: "dap-two-clients", backend: QEMU, boardTemplate: $b}) { id } }',
        { b: 'mps2-an385' },
    );
    const sessionId = createSession.id;
    try {
        await upload(sessionId, firmware('bin/ticker-mps2-an385.elf'));
        await graphql('mutation($id: ID!) { powerSession(id: $id, action: ON, halted: true) { state } }', { id: sessionId });
        const { session } = await graphql('query($id: ID!) { session(id: $id) { dapAddress } }', { id: sessionId });
        const address = session.dapAddress;
        const port = Number(address.split(':').pop());
        assert.ok(address.startsWith('127.0.0.1:') && port > 0, `dapAddress ${address}`);

        await traced(async (clients) => {
            for (const name of ['client A', 'client B']) {
                const dc = new TracedClient(name, 'unused', 'unused', 'virserver');
                clients.push(dc);
                await within(dc.start(port), `${name}: connect to ${address}`);
                await within(dc.initializeRequest(), `${name}: initialize`);
                const initialized = dc.waitForEvent('initialized', TIMEOUT);
                const stopped = dc.waitForEvent('stopped', TIMEOUT);
                const attach = within(dc.attachRequest({ sessionId }), `${name}: attach`);
                attach.catch(() => {});
                await within(initialized, `${name}: initialized`);
                await within(dc.configurationDoneRequest(), `${name}: configurationDone`);
                await attach;
                await within(stopped, `${name}: stopped after attach`);
            }
            // Both see the same halted CPU and read the firmware's global.
            const seen = [];
            for (const dc of clients) {
                const threads = await within(dc.threadsRequest(), `${dc.name}: threads`);
                const frames = await topFrame(dc, threads.body.threads[0].id);
                assert.equal(typeof frames[0].name, 'string', JSON.stringify(frames[0]));
                const count = await within(dc.evaluateRequest({ expression: 'tick_count', frameId: frames[0].id, context: 'watch' }), `${dc.name}: evaluate`);
                assert.match(count.body.result, /^\d+$/, `tick_count: ${count.body.result}`);
                seen.push(`${frames[0].name} ${frames[0].instructionPointerReference ?? ''} tick_count=${count.body.result}`);
            }
            assert.equal(seen[0], seen[1], 'both clients see one CPU');
            for (const dc of clients) await within(dc.disconnectRequest({}), `${dc.name}: disconnect`);
        });

        // The session outlives its DAP clients.
        const after = await graphql('query($id: ID!) { session(id: $id) { state } }', { id: sessionId });
        assert.ok(['RUNNING', 'PAUSED'].includes(after.session.state), `session state after the clients left: ${after.session.state}`);
    } finally {
        await graphql('mutation($id: ID!) { deleteSession(id: $id) }', { id: sessionId }).catch((error) => console.error(`deleteSession: ${error}`));
    }
});
