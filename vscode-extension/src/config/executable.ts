// Finding the `virserver` binary that the setting `virserver.path` names, so a missing
// one is reported before VS Code fails to start an adapter without saying why.
import { accessSync, constants, statSync } from 'node:fs';
import * as path from 'node:path';

export class MissingExecutableError extends Error {
    constructor(readonly command: string, detail: string) {
        super(
            `the virserver executable '${command}' ${detail}; build it (cargo build --release) ` +
                `and set virserver.path to target/release/virserver, or put it on PATH`,
        );
        this.name = 'MissingExecutableError';
    }
}

export type IsExecutable = (file: string) => boolean;

export const isExecutableFile: IsExecutable = (file) => {
    try {
        accessSync(file, constants.X_OK);
        return statSync(file).isFile();
    } catch {
        return false;
    }
};

/** The absolute path of `command`: a path (relative to `cwd`) or a name on `searchPath`. */
export function findExecutable(
    command: string,
    searchPath: string | undefined,
    cwd: string,
    isExecutable: IsExecutable = isExecutableFile,
): string {
    if (command.trim() === '') {
        throw new MissingExecutableError(command, 'is empty');
    }
    if (command.includes('/') || command.includes(path.sep)) {
        const file = path.resolve(cwd, command);
        if (isExecutable(file)) {
            return file;
        }
        throw new MissingExecutableError(command, `is not an executable file (${file})`);
    }
    for (const directory of (searchPath ?? '').split(path.delimiter)) {
        if (directory === '') {
            continue;
        }
        const file = path.join(directory, command);
        if (isExecutable(file)) {
            return file;
        }
    }
    throw new MissingExecutableError(command, 'is not on PATH');
}
