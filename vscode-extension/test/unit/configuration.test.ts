import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigurationError, normalizeConfiguration, parseHostPort } from '../../src/debug/configuration';

const defaults = { serverUrl: 'http://127.0.0.1:8080', workspaceFolder: '/ws' };
const exists = (file: string): boolean => file === '/ws/bin/hello.elf';

test('a launch gets the server setting, the folder as cwd and an absolute program', () => {
    assert.deepEqual(
        normalizeConfiguration({ type: 'virserver', request: 'launch', name: 'L', board: 'mps2-an385', program: 'bin/hello.elf', stopOnEntry: true }, defaults, exists),
        { type: 'virserver', request: 'launch', name: 'L', server: 'http://127.0.0.1:8080', board: 'mps2-an385', program: '/ws/bin/hello.elf', stopOnEntry: true, coverage: false, cwd: '/ws' },
    );
});

test('the configuration server wins over the setting', () => {
    const configuration = normalizeConfiguration({ request: 'attach', sessionId: 's1', server: 'http://10.0.0.1:9' }, defaults, exists);
    assert.deepEqual(configuration, { type: 'virserver', request: 'attach', name: 'VirServer', server: 'http://10.0.0.1:9', sessionId: 's1' });
});

for (const [name, raw, expected] of [
    ['an attach without sessionId', { request: 'attach', name: 'A' }, /'A' needs "sessionId"/],
    ['a launch without board', { request: 'launch', program: 'bin/hello.elf' }, /needs "board"/],
    ['a launch without program', { request: 'launch', board: 'b' }, /needs "program"/],
    ['a missing program', { request: 'launch', board: 'b', program: 'nope.elf' }, /\/ws\/nope\.elf .* does not exist/],
    ['an unknown request', { request: 'run' }, /request 'run'/],
] as const) {
    test(`rejects ${name}`, () => {
        assert.throws(() => normalizeConfiguration({ ...raw }, defaults, exists), (error: unknown) => error instanceof ConfigurationError && expected.test(error.message));
    });
}

test('host:port addresses parse, others do not', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:4711'), { host: '127.0.0.1', port: 4711 });
    assert.deepEqual(parseHostPort('[::1]:9000'), { host: '::1', port: 9000 });
    assert.equal(parseHostPort('127.0.0.1'), undefined);
    assert.equal(parseHostPort('host:0'), undefined);
    assert.equal(parseHostPort('host:70000'), undefined);
});
