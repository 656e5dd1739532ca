// The GraphQL edge of the extension: queries and mutations over HTTP POST /graphql,
// subscriptions over graphql-transport-ws at the same path. It knows nothing of VS Code,
// so its errors are plain messages a caller can show as they are.
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/** A failure talking to the server, worded for the user. */
export class VirServerError extends Error {
    constructor(message: string, readonly code?: string) {
        super(message);
        this.name = 'VirServerError';
    }
}

interface GraphQLErrorShape {
    message: string;
    extensions?: { code?: string };
}

interface GraphQLResponseShape<T> {
    data?: T | null;
    errors?: GraphQLErrorShape[];
}

/** The /graphql endpoint of a server URL given with or without that path. */
export function graphqlEndpoint(serverUrl: string): URL {
    let url: URL;
    try {
        url = new URL(serverUrl);
    } catch {
        throw new VirServerError(`'${serverUrl}' is not a URL (expected e.g. http://127.0.0.1:8080)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new VirServerError(`'${serverUrl}' is not an http(s) URL`);
    }
    if (!url.pathname.endsWith('/graphql')) {
        url.pathname = url.pathname.replace(/\/+$/, '') + '/graphql';
    }
    return url;
}

/** The WebSocket URL of the same endpoint (ws:// or wss://). */
export function websocketEndpoint(serverUrl: string): string {
    const url = graphqlEndpoint(serverUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.toString();
}

function describeFetchFailure(endpoint: URL, error: unknown): string {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const detail = cause instanceof Error ? cause.message : String(cause);
    return `VirServer at ${endpoint.origin} is unreachable (${detail}); start it (scripts/serve) or set virserver.serverUrl`;
}

export interface Subscription {
    dispose(): void;
}

export interface SubscriptionHandlers<T> {
    next(data: T): void;
    error?(error: VirServerError): void;
    complete?(): void;
}

/** What a server with `--auth required` answers without a valid key, and what to do. */
export const AUTH_HINT = "set an API key with the command 'VirServer: Set API Key' (or VIRSERVER_TOKEN)";

export interface ClientOptions {
    /** The API key's token, sent as `Authorization: Bearer` and in `connection_init`. */
    token?: string;
    timeoutMs?: number;
}

export class GraphQLClient {
    readonly endpoint: URL;
    private websocket: Client | undefined;
    private readonly token: string | undefined;
    private readonly timeoutMs: number;

    constructor(readonly serverUrl: string, options: ClientOptions = {}) {
        this.endpoint = graphqlEndpoint(serverUrl);
        this.token = options.token;
        this.timeoutMs = options.timeoutMs ?? 15000;
    }

    /** The `Authorization` value, when a token is set. */
    private authorization(): string | undefined {
        return this.token === undefined ? undefined : `Bearer ${this.token}`;
    }

    async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
        let response: Response;
        try {
            response = await fetch(this.endpoint, {
                method: 'POST',
                headers: {
                    'content-type': 'application/json',
                    accept: 'application/json',
                    ...(this.token === undefined ? {} : { authorization: this.authorization() }),
                },
                body: JSON.stringify({ query, variables }),
                signal: AbortSignal.timeout(this.timeoutMs),
            });
        } catch (error) {
            throw new VirServerError(describeFetchFailure(this.endpoint, error), 'UNREACHABLE');
        }
        let body: GraphQLResponseShape<T>;
        try {
            body = (await response.json()) as GraphQLResponseShape<T>;
        } catch {
            throw new VirServerError(
                `VirServer at ${this.endpoint.origin} answered HTTP ${response.status} without a GraphQL response; is virserver.serverUrl a VirServer?`,
                'BAD_RESPONSE',
            );
        }
        const first = body.errors?.[0];
        if (first) {
            throw codedError(first);
        }
        if (body.data === undefined || body.data === null) {
            throw new VirServerError(`VirServer answered HTTP ${response.status} with no data`, 'BAD_RESPONSE');
        }
        return body.data;
    }

    subscribe<T>(query: string, variables: Record<string, unknown>, handlers: SubscriptionHandlers<T>): Subscription {
        const dispose = this.connection().subscribe<T>(
            { query, variables },
            {
                next: (result) => {
                    const first = result.errors?.[0];
                    if (first) {
                        handlers.error?.(codedError(first));
                    } else if (result.data) {
                        handlers.next(result.data);
                    }
                },
                error: (error: unknown) => handlers.error?.(toVirServerError(error, this.endpoint)),
                complete: () => handlers.complete?.(),
            },
        );
        return { dispose };
    }

    dispose(): void {
        void this.websocket?.dispose();
        this.websocket = undefined;
    }

    private connection(): Client {
        this.websocket ??= createClient({
            url: websocketEndpoint(this.serverUrl),
            webSocketImpl: WebSocket,
            lazy: true,
            retryAttempts: 5,
            keepAlive: 20000,
            connectionParams: this.token === undefined ? undefined : { authorization: this.authorization() },
        });
        return this.websocket;
    }
}

/** A GraphQL error as the user sees it: with what to do when the server wants a key. */
function codedError(error: GraphQLErrorShape): VirServerError {
    const code = error.extensions?.code;
    const message = code === 'UNAUTHENTICATED' ? `${error.message}: ${AUTH_HINT}` : error.message;
    return new VirServerError(message, code);
}

function toVirServerError(error: unknown, endpoint: URL): VirServerError {
    if (Array.isArray(error)) {
        const messages = error.map((item: unknown) => (item instanceof Object && 'message' in item ? String(item.message) : String(item)));
        return new VirServerError(messages.join('; '));
    }
    if (error instanceof Error) {
        return new VirServerError(describeFetchFailure(endpoint, error), 'UNREACHABLE');
    }
    // A CloseEvent-like object from the WebSocket.
    if (error instanceof Object && 'code' in error) {
        const reason = 'reason' in error && typeof error.reason === 'string' && error.reason ? `: ${error.reason}` : '';
        return new VirServerError(`the subscription to ${endpoint.origin} closed (code ${String(error.code)}${reason})`, 'CLOSED');
    }
    return new VirServerError(String(error));
}
