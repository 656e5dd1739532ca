// Loaded with `node --require`: makes `require('vscode')` give the stand-in of
// ./vscode.ts, since the real module exists only inside a VS Code extension host.
import Module from 'node:module';
import * as path from 'node:path';

type Resolve = (request: string, ...rest: unknown[]) => string;
const moduleWithResolver = Module as unknown as { _resolveFilename: Resolve };
const original = moduleWithResolver._resolveFilename;
const stub = path.join(__dirname, 'vscode.js');

moduleWithResolver._resolveFilename = function (request: string, ...rest: unknown[]): string {
    return original.call(this, request === 'vscode' ? stub : request, ...rest);
};
