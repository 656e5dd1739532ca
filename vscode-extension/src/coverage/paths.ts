// Where an LCOV `SF:` path lives in the workspace: the tracefile names sources as the
// compiler saw them (absolute build paths, or relative to the build directory), which
// rarely match the machine that shows them.
import * as path from 'node:path';

/**
 * The first existing file for `sourcePath`: itself when absolute, else under a root, else
 * the longest tail of it (dropping leading directories) found under a root.
 */
export function resolveSourcePath(
    sourcePath: string,
    roots: readonly string[],
    exists: (candidate: string) => boolean,
): string | undefined {
    const normalized = sourcePath.replace(/\\/g, '/');
    if (path.isAbsolute(normalized) && exists(normalized)) {
        return normalized;
    }
    const parts = normalized.split('/').filter((part) => part !== '' && part !== '.');
    for (let start = 0; start < parts.length; start++) {
        const tail = parts.slice(start).join('/');
        for (const root of roots) {
            const candidate = path.join(root, tail);
            if (exists(candidate)) {
                return candidate;
            }
        }
    }
    return undefined;
}
