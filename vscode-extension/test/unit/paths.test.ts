import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveSourcePath } from '../../src/coverage/paths';

const files = new Set(['/ws/examples/firmware/programs/hello.c', '/ws/examples/firmware/common/print.c', '/abs/kept.c']);
const exists = (file: string): boolean => files.has(file);

test('an absolute path that exists is kept', () => {
    assert.equal(resolveSourcePath('/abs/kept.c', ['/ws'], exists), '/abs/kept.c');
});

test('a relative path is looked up under each root', () => {
    assert.equal(resolveSourcePath('examples/firmware/common/print.c', ['/other', '/ws'], exists), '/ws/examples/firmware/common/print.c');
});

test('a build path from another machine matches by its longest tail', () => {
    assert.equal(resolveSourcePath('/home/ci/src/virserver/examples/firmware/programs/hello.c', ['/ws'], exists), '/ws/examples/firmware/programs/hello.c');
    assert.equal(resolveSourcePath('C:\\build\\examples\\firmware\\programs\\hello.c', ['/ws'], exists), '/ws/examples/firmware/programs/hello.c');
});

test('a file that is nowhere gives undefined', () => {
    assert.equal(resolveSourcePath('/build/startup.c', ['/ws'], exists), undefined);
});
