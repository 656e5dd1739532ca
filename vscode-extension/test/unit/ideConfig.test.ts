import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { mergeConfigurations, parseIdeConfigOutput, runIdeConfig } from '../../src/config/ideConfig';

const cortexDebug = { name: 'VirServer: s1 (cortex-debug)', type: 'cortex-debug', request: 'attach', servertype: 'external', gdbTarget: '127.0.0.1:3333', executable: 'bin/hello.elf' };

test('ide-config output may be a launch.json, a list or one configuration', () => {
    assert.deepEqual(parseIdeConfigOutput(JSON.stringify({ version: '0.2.0', configurations: [cortexDebug] })), [cortexDebug]);
    assert.deepEqual(parseIdeConfigOutput(JSON.stringify([cortexDebug])), [cortexDebug]);
    assert.deepEqual(parseIdeConfigOutput(JSON.stringify(cortexDebug)), [cortexDebug]);
});

test('output that is no configuration is rejected', () => {
    assert.throws(() => parseIdeConfigOutput('target extended-remote :3333'), /printed no JSON/);
    assert.throws(() => parseIdeConfigOutput('{"type": "gdb"}'), /not a launch configuration/);
    assert.throws(() => parseIdeConfigOutput('[]'), /not a launch configuration/);
});

test('merging replaces the configuration of the same name and keeps the others', () => {
    const other = { name: 'Other', type: 'node', request: 'launch' };
    const stale = { ...cortexDebug, gdbTarget: '127.0.0.1:1' };
    assert.deepEqual(mergeConfigurations([other, stale, 'junk'], [cortexDebug]), [other, 'junk', cortexDebug]);
    assert.deepEqual(mergeConfigurations([], [cortexDebug]), [cortexDebug]);
});

const directory = mkdtempSync(path.join(tmpdir(), 'virserver-ide-'));
function script(name: string, body: string): string {
    const file = path.join(directory, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
}

test('runIdeConfig passes server, session and kind, and parses stdout', async () => {
    const fake = script('echo-args', `printf '{"name":"%s %s %s %s","type":"cortex-debug","request":"attach"}' "$1" "$3" "$5" "$7"`);
    assert.deepEqual(await runIdeConfig(fake, 'http://127.0.0.1:8080', 's1', 'cortex-debug'), [
        { name: 'ide-config http://127.0.0.1:8080 s1 cortex-debug', type: 'cortex-debug', request: 'attach' },
    ]);
});

test('runIdeConfig reports the binary stderr when it fails', async () => {
    const failing = script('fails', `echo "error: the session s1 is not powered" >&2; exit 1`);
    await assert.rejects(runIdeConfig(failing, 'http://x', 's1', 'gdb'), /ide-config --server http:\/\/x --session s1 --kind gdb failed: error: the session s1 is not powered/);
});
