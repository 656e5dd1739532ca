// A stand-in VirServer for unit tests: the real schema.graphql of the repository,
// executed by graphql-js with resolvers the test gives, over HTTP POST and graphql-ws on
// one port. Documents that do not match the schema fail here as they would on the server.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { buildSchema, graphql, type GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';

export const SCHEMA_FILE = path.resolve(__dirname, '../../../../schema.graphql');

export function loadSchema(): GraphQLSchema {
    return buildSchema(readFileSync(SCHEMA_FILE, 'utf8'));
}

export type Resolvers = Record<string, object>;

export interface FakeServer {
    url: string;
    requests: { query: string; variables: Record<string, unknown>; authorization?: string }[];
    /** The `connection_init` payload of each WebSocket. */
    connections: (Record<string, unknown> | undefined)[];
    close(): Promise<void>;
}

export async function startFakeServer(roots: { query?: Resolvers; mutation?: Resolvers; subscription?: Resolvers }): Promise<FakeServer> {
    const schema = loadSchema();
    const requests: FakeServer['requests'] = [];
    const connections: FakeServer['connections'] = [];
    const rootValue = { ...roots.query, ...roots.mutation };
    const http: Server = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { query: string; variables?: Record<string, unknown> };
            requests.push({ query: body.query, variables: body.variables ?? {}, authorization: request.headers.authorization });
            void graphql({ schema, source: body.query, rootValue, variableValues: body.variables ?? {} }).then((result) => {
                response.setHeader('content-type', 'application/json');
                response.end(JSON.stringify(result));
            });
        });
    });
    const websockets = new WebSocketServer({ server: http, path: '/graphql' });
    const cleanup = useServer(
        {
            schema,
            roots: { query: roots.query ?? {}, mutation: roots.mutation ?? {}, subscription: roots.subscription ?? {} },
            onConnect: (context) => {
                connections.push(context.connectionParams);
            },
        },
        websockets,
    );
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const { port } = http.address() as AddressInfo;
    return {
        url: `http://127.0.0.1:${port}`,
        requests,
        connections,
        close: async () => {
            await cleanup.dispose();
            await new Promise<void>((resolve) => {
                http.closeAllConnections();
                http.close(() => resolve());
            });
        },
    };
}

/** An async iterable of `values`, one per tick, for subscription resolvers. */
export async function* stream<T>(values: T[]): AsyncGenerator<T> {
    for (const value of values) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield value;
    }
}

/** A loopback URL where nothing listens: a port that was free a moment ago. */
export async function unreachableUrl(): Promise<string> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return `http://127.0.0.1:${port}`;
}
