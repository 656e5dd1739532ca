import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LcovParseError, parseLcov, summarize } from '../../src/coverage/lcov';

const TRACEFILE = `TN:
SF:/build/examples/firmware/programs/hello.c
FN:5,count_to
FN:12,main
FNDA:1,main
FNF:2
FNH:1
DA:5,3
DA:6,0
DA:12,1
LF:3
LH:2
end_of_record
SF:common/print.c
FN:3,7,uart_puts
FNDA:4,uart_puts
DA:3,4
DA:4,0
end_of_record
SF:/build/examples/firmware/programs/hello.c
DA:6,2
end_of_record
`;

test('parses files, lines and both FN forms, merging repeated records', () => {
    const files = parseLcov(TRACEFILE);
    assert.deepEqual(
        files.map((file) => file.path),
        ['/build/examples/firmware/programs/hello.c', 'common/print.c'],
    );
    const [hello, print] = files;
    assert.ok(hello && print);
    assert.deepEqual([...hello.lines], [[5, 3], [6, 2], [12, 1]]);
    assert.deepEqual(hello.functions, [
        { name: 'count_to', line: 5, hits: 0 },
        { name: 'main', line: 12, hits: 1 },
    ]);
    assert.deepEqual(print.functions, [{ name: 'uart_puts', line: 3, hits: 4 }]);
});

test('summarizes line coverage, rounding down', () => {
    const [hello, print] = parseLcov(TRACEFILE);
    assert.ok(hello && print);
    assert.deepEqual(summarize(hello), { found: 3, hit: 3, percent: 100 });
    assert.deepEqual(summarize(print), { found: 2, hit: 1, percent: 50 });
    const [thirds] = parseLcov('SF:a.c\nDA:1,1\nDA:2,1\nDA:3,0\nend_of_record\n');
    assert.ok(thirds);
    assert.equal(summarize(thirds).percent, 66.6);
    const [empty] = parseLcov('SF:empty.c\nend_of_record\n');
    assert.ok(empty);
    assert.deepEqual(summarize(empty), { found: 0, hit: 0, percent: 0 });
});

test('accepts CRLF, comments, blank lines and DA checksums', () => {
    const [file] = parseLcov('# made by hand\r\n\r\nSF:x.c\r\nDA:7,2,abcdef\r\nend_of_record\r\n');
    assert.ok(file);
    assert.deepEqual([...file.lines], [[7, 2]]);
});

test('an empty tracefile has no files', () => {
    assert.deepEqual(parseLcov(''), []);
});

for (const [name, text, expected] of [
    ['data before SF', 'DA:1,1\n', /line 1: DA before any SF/],
    ['a bad hit count', 'SF:a.c\nDA:1,x\nend_of_record\n', /line 2: 'x' is not a hit count/],
    ['a negative line', 'SF:a.c\nDA:-1,1\nend_of_record\n', /'-1' is not a line number/],
    ['a missing end_of_record', 'SF:a.c\nDA:1,1\n', /no end_of_record/],
    ['a stray end_of_record', 'end_of_record\n', /outside a record/],
    ['an FN without a name', 'SF:a.c\nFN:3\nend_of_record\n', /not FN:line,name/],
] as const) {
    test(`rejects ${name}`, () => {
        assert.throws(() => parseLcov(text), (error: unknown) => error instanceof LcovParseError && expected.test(error.message));
    });
}
