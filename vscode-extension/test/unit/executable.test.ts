import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { findExecutable, MissingExecutableError } from '../../src/config/executable';

const directory = mkdtempSync(path.join(tmpdir(), 'virserver-ext-'));
const binary = path.join(directory, 'virserver');
writeFileSync(binary, '#!/bin/sh\n');
chmodSync(binary, 0o755);
writeFileSync(path.join(directory, 'not-executable'), '');

test('a name is found on PATH', () => {
    assert.equal(findExecutable('virserver', `/nonexistent${path.delimiter}${directory}`, '/'), binary);
});

test('a relative path is taken from cwd', () => {
    assert.equal(findExecutable('./virserver', undefined, directory), binary);
});

for (const [command, searchPath, expected] of [
    ['virserver', '/nonexistent', /'virserver' is not on PATH; build it/],
    ['./not-executable', undefined, /is not an executable file/],
    ['  ', directory, /is empty/],
] as const) {
    test(`'${command}' is reported as missing`, () => {
        assert.throws(() => findExecutable(command, searchPath, directory), (error: unknown) => error instanceof MissingExecutableError && expected.test(error.message));
    });
}
