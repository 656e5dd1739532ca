// A pure LCOV tracefile reader: line and function hits per source file, and the
// percentages shown in the editor. No I/O, no VS Code.

export interface LcovFile {
    /** The `SF:` path as the tracefile spells it. */
    path: string;
    /** Line number to execution count (hits of repeated `DA:` lines add up). */
    lines: Map<number, number>;
    functions: { name: string; line: number; hits: number }[];
}

export class LcovParseError extends Error {
    constructor(message: string, readonly lineNumber: number) {
        super(`LCOV line ${lineNumber}: ${message}`);
        this.name = 'LcovParseError';
    }
}

function parseCount(text: string, lineNumber: number, what: string): number {
    const value = Number(text);
    if (text.trim() === '' || !Number.isInteger(value) || value < 0) {
        throw new LcovParseError(`'${text}' is not a ${what}`, lineNumber);
    }
    return value;
}

/** Parses a tracefile; records of the same file are merged. */
export function parseLcov(text: string): LcovFile[] {
    const files = new Map<string, LcovFile>();
    let current: LcovFile | undefined;
    const lines = text.split(/\r?\n/);
    lines.forEach((raw, index) => {
        const lineNumber = index + 1;
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) {
            return;
        }
        if (line === 'end_of_record') {
            if (!current) {
                throw new LcovParseError('end_of_record outside a record', lineNumber);
            }
            current = undefined;
            return;
        }
        const colon = line.indexOf(':');
        const tag = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1);
        if (tag === 'SF') {
            if (value === '') {
                throw new LcovParseError('SF without a path', lineNumber);
            }
            current = files.get(value) ?? { path: value, lines: new Map(), functions: [] };
            files.set(value, current);
            return;
        }
        if (tag === 'TN' || tag === 'VER') {
            return;
        }
        if (!current) {
            throw new LcovParseError(`${tag} before any SF`, lineNumber);
        }
        switch (tag) {
            case 'DA': {
                const [lineText = '', hitsText = ''] = value.split(',');
                const sourceLine = parseCount(lineText, lineNumber, 'line number');
                const hits = parseCount(hitsText, lineNumber, 'hit count');
                current.lines.set(sourceLine, (current.lines.get(sourceLine) ?? 0) + hits);
                return;
            }
            case 'FN': {
                // FN:line,name, or LCOV 2's FN:start,end,name.
                const parts = value.split(',');
                const lcov2 = parts.length >= 3 && /^\d+$/.test(parts[1] ?? '');
                const name = parts.slice(lcov2 ? 2 : 1).join(',');
                if (parts.length < 2 || name === '') {
                    throw new LcovParseError(`'${value}' is not FN:line,name`, lineNumber);
                }
                const functionLine = parseCount(parts[0] ?? '', lineNumber, 'line number');
                const known = current.functions.find((f) => f.name === name);
                if (known) {
                    known.line = functionLine;
                } else {
                    current.functions.push({ name, line: functionLine, hits: 0 });
                }
                return;
            }
            case 'FNDA': {
                const comma = value.indexOf(',');
                if (comma < 0) {
                    throw new LcovParseError(`'${value}' is not FNDA:hits,name`, lineNumber);
                }
                const name = value.slice(comma + 1);
                const hits = parseCount(value.slice(0, comma), lineNumber, 'hit count');
                const known = current.functions.find((f) => f.name === name);
                if (known) {
                    known.hits += hits;
                } else {
                    current.functions.push({ name, line: 0, hits });
                }
                return;
            }
            default:
                // LF, LH, FNF, FNH, BRDA, BRF, BRH: totals are recomputed from DA lines.
                return;
        }
    });
    if (current) {
        throw new LcovParseError('the last record has no end_of_record', lines.length);
    }
    return [...files.values()];
}

export interface LineSummary {
    found: number;
    hit: number;
    /** Rounded down to one decimal, so 99.95 % never shows as 100 %. */
    percent: number;
}

export function summarize(file: LcovFile): LineSummary {
    const found = file.lines.size;
    const hit = [...file.lines.values()].filter((hits) => hits > 0).length;
    const percent = found === 0 ? 0 : Math.floor((hit / found) * 1000) / 10;
    return { found, hit, percent };
}
