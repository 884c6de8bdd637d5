// Type declarations of socketeer.js, the browser client of socketeer's RPC (JSON-RPC 2.0 over
// WebSocket). The semantics (queueing, reconnection, at-most-once delivery, the heartbeat, the
// order of room publications) are in the header comment of socketeer.js; the wire contract is
// docs/rpc-protocol.md (and docs/pubsub.md for rooms).

/** The subprotocol the client offers: "socketeer.rpc.v1". */
export declare const SUBPROTOCOL: "socketeer.rpc.v1";

/** JSON-RPC error codes, as in socketeer's Python RPC layer. */
export declare const ErrorCode: Readonly<{
  PARSE_ERROR: -32700;
  INVALID_REQUEST: -32600;
  METHOD_NOT_FOUND: -32601;
  INVALID_PARAMS: -32602;
  INTERNAL_ERROR: -32603;
  APPLICATION_ERROR: -32000;
  CALL_TIMEOUT: -32001;
  CALL_CANCELLED: -32002;
  FORBIDDEN: -32003;
  RATE_LIMITED: -32004;
}>;

/** WebSocket close codes: RFC 6455's, and the client's own HEARTBEAT_TIMEOUT (4000). */
export declare const CloseCode: Readonly<{
  NORMAL_CLOSURE: 1000;
  GOING_AWAY: 1001;
  PROTOCOL_ERROR: 1002;
  UNSUPPORTED_DATA: 1003;
  NO_STATUS_RCVD: 1005;
  ABNORMAL_CLOSURE: 1006;
  INVALID_FRAME_PAYLOAD_DATA: 1007;
  POLICY_VIOLATION: 1008;
  MESSAGE_TOO_BIG: 1009;
  MANDATORY_EXTENSION: 1010;
  INTERNAL_ERROR: 1011;
  SERVICE_RESTART: 1012;
  TRY_AGAIN_LATER: 1013;
  BAD_GATEWAY: 1014;
  TLS_HANDSHAKE: 1015;
  HEARTBEAT_TIMEOUT: 4000;
}>;

/** The options of `new RPC(url, options)` that have defaults (durations in milliseconds). */
export interface Policy {
  /** Default timeout of calls; 0 or Infinity: none. Default 30 000. */
  timeout: number;
  /** Most calls and notifications that wait for a connection. Default 1000. */
  maxQueued: number;
  /** Reconnect after a lost connection or a failed attempt. Default true. */
  reconnect: boolean;
  /** Delay before the first reconnection attempt. Default 1000. */
  initialDelay: number;
  /** Longest delay between attempts. Default 30 000. */
  maxDelay: number;
  /** Growth of the delay from one attempt to the next (>= 1). Default 2. */
  backoffFactor: number;
  /** Part of each delay taken off at random, 0..1. Default 0.5. */
  jitter: number;
  /** Longest opening handshake before the attempt is abandoned; 0: none. Default 10 000. */
  connectTimeout: number;
  /** Time between two heartbeats ($/ping requests); 0: no heartbeat. Default 20 000. */
  heartbeatInterval: number;
  /** Longest wait for a heartbeat's answer before reconnecting (> 0). Default 10 000. */
  heartbeatTimeout: number;
}

/** The defaults of the options. */
export declare const DEFAULTS: Readonly<Policy>;

export interface RPCOptions extends Partial<Policy> {
  /** The WebSocket constructor; default globalThis.WebSocket. Tests pass a fake. */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
  /** For tests: replaces globalThis.setTimeout. */
  setTimeout?: (handler: () => void, ms: number) => unknown;
  /** For tests: replaces globalThis.clearTimeout. */
  clearTimeout?: (handle: any) => void;
  /** For tests: replaces Math.random (0 <= random() < 1) in the backoff's jitter. */
  random?: () => number;
}

/** Positional (an array) or named (an object) params. */
export type Params = unknown[] | Record<string, unknown>;

export interface CallOptions {
  /** Positional (an array) or named (an object) params; none if absent. */
  params?: Params;
  /** Milliseconds from the call to the answer, queue time included; 0 or Infinity: none. */
  timeout?: number;
  /** Aborting it rejects the call with `signal.reason` (and sends $/cancel if in flight). */
  signal?: AbortSignal;
}

export interface NotifyOptions {
  /** Positional (an array) or named (an object) params; none if absent. */
  params?: Params;
}

/** `this` in a function registered with register(). */
export interface CallContext {
  /** Aborted when the server sends $/cancel for the call, or the connection is lost. */
  readonly signal: AbortSignal;
  /** The request's id; undefined for a notification. */
  readonly id: string | number | null | undefined;
  /** The method name the server called. */
  readonly method: string;
}

export type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A remote method reached through `rpc.proxy`: callable, and a path to longer names. */
export interface RemoteMethod {
  (...args: unknown[]): Promise<any>;
  readonly [name: string]: RemoteMethod;
}

/** `rpc.proxy`: `rpc.proxy.counter.increment(1)` calls "counter.increment". */
export interface RemoteProxy {
  readonly [name: string]: RemoteMethod;
}

/**
 * A typed view of a server's API for `rpc.proxy`: every function returns a promise.
 *
 * @example
 * interface API { add(a: number, b: number): number; counter: { increment(by?: number): number } }
 * const api = rpc.proxy as unknown as Remote<API>;
 * const n: number = await api.counter.increment(1);
 */
export type Remote<T> = {
  readonly [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : Remote<T[K]>;
};

// Rooms (publish/subscribe)

/**
 * A position in a room: `offset` counts its publications from 1 within `epoch` (a string that
 * changes when the server may have forgotten the room's history).
 */
export interface RoomPosition {
  readonly room: string;
  readonly epoch: string;
  readonly offset: number;
}

export interface SubscribeOptions {
  /**
   * Called when publications were lost: the history no longer held them, the server forgot
   * the room (a new epoch), or too many came out of order. Delivery resumes after `position`;
   * the application resynchronises by other means (e.g. a fresh snapshot).
   */
  onReset?: (position: RoomPosition) => unknown;
}

/** What `rpc.subscribe()` returns. */
export interface Subscription {
  readonly room: string;
  /**
   * Resolves with the position delivery starts after, once the room is joined. Rejects with
   * the error of a refused join (also an "error" event; the join is made again on the next
   * connection), with ClientClosed after close(), or with an AbortError after unsubscribe().
   * Its rejection is never reported as unhandled.
   */
  readonly ready: Promise<RoomPosition>;
  /** Stop the callbacks; the last subscription of a room leaves it. Twice is harmless. */
  unsubscribe(): void;
}

/** Where a publication went: what `rpc.publish()` resolves with. */
export interface Published {
  readonly epoch: string;
  readonly offset: number;
}

// Errors

/** The base class of the errors of this module. */
export declare class RPCError extends Error {}

/** The server answered a call with a JSON-RPC error. */
export declare class RemoteError extends RPCError {
  constructor(method: string | null, error: { code: number; message: string; data?: unknown });
  readonly name: "RemoteError";
  /** The method called; null for an error the server sent without a request id. */
  readonly method: string | null;
  /** The JSON-RPC error code (see ErrorCode): -32000 for an exception the method raised. */
  readonly code: number;
  /**
   * The error's `data`: `{type, message, traceback?}` for -32000, a string detail for the codes
   * of JSON-RPC 2.0 (for -32601, the method name), or undefined.
   */
  readonly data: unknown;
  /** The remote exception's type name (`data.type`, e.g. "ValueError"), or null. */
  readonly typeName: string | null;
}

/** A call got no answer within its timeout; its name is "TimeoutError". */
export declare class CallTimeout extends RPCError {
  constructor(method: string, timeout: number);
  readonly name: "TimeoutError";
  readonly method: string;
  /** The timeout, in milliseconds. */
  readonly timeout: number;
}

/** The connection closed while the call was in flight: it may or may not have run. */
export declare class ConnectionLost extends RPCError {
  constructor(method: string, code: number, reason: string);
  readonly name: "ConnectionLost";
  readonly method: string;
  /** The close code (4000: no answer to the heartbeat). */
  readonly code: number;
  readonly reason: string;
}

/** The call or notification was refused: `maxQueued` messages already wait. It never ran. */
export declare class QueueFull extends RPCError {
  constructor(method: string, limit: number);
  readonly name: "QueueFull";
  readonly method: string;
  readonly limit: number;
}

/** The client is closed (close(), or a loss with `reconnect: false`); the call never ran. */
export declare class ClientClosed extends RPCError {
  readonly name: "ClientClosed";
}

// Events

/** "connect": a connection opened. */
export declare class ConnectEvent extends Event {
  constructor(url: string, protocol: string);
  readonly type: "connect";
  readonly url: string;
  /** The subprotocol the server selected. */
  readonly protocol: string;
}

/** "disconnect": an open connection closed, or was given up on (heartbeat). */
export declare class DisconnectEvent extends Event {
  constructor(code: number, reason: string, wasClean: boolean, willReconnect: boolean);
  readonly type: "disconnect";
  /** The close code (4000: no answer to the heartbeat). */
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  /** False after close(), or with `reconnect: false`. */
  readonly willReconnect: boolean;
}

/** "reconnecting": an attempt is scheduled, after a loss or a failed attempt. */
export declare class ReconnectingEvent extends Event {
  constructor(attempt: number, delay: number);
  readonly type: "reconnecting";
  /** 1 for the first attempt since the last open connection. */
  readonly attempt: number;
  /** Milliseconds before the attempt. */
  readonly delay: number;
}

/** "error": a failed socket, a message that is not JSON-RPC, a listener or hook that threw. */
export declare class RPCErrorEvent extends Event {
  constructor(error: unknown);
  readonly type: "error";
  readonly error: unknown;
  readonly message: string;
}

export interface RPCEventMap {
  connect: ConnectEvent;
  disconnect: DisconnectEvent;
  reconnecting: ReconnectingEvent;
  error: RPCErrorEvent;
}

/** The delay before reconnection attempt `attempt` (1, 2, ...), in milliseconds. */
export declare function backoffDelay(
  attempt: number,
  policy: Pick<Policy, "initialDelay" | "maxDelay" | "backoffFactor" | "jitter">,
  random: () => number,
): number;

// The client

/**
 * A JSON-RPC client over a WebSocket that reconnects by itself.
 *
 * Calls made before connect() or while reconnecting are queued (up to `maxQueued`) and sent
 * when a connection opens. Calls in flight when the connection is lost reject with
 * ConnectionLost and are never sent again: they may have run. close() stops for good.
 */
export declare class RPC extends EventTarget {
  /**
   * @param url ws:// or wss://; or http(s):// or relative to the page (ws:// or wss:// like it)
   */
  constructor(url: string | URL, options?: RPCOptions);

  /** The resolved ws:// or wss:// URL. */
  readonly url: string;
  /** The options in force, defaults included. */
  readonly options: Readonly<Policy>;
  readonly state: State;
  /** How many calls and notifications wait for a connection. */
  readonly queued: number;
  /** How many calls were sent and await their answer. */
  readonly inFlight: number;

  /**
   * Start connecting (and reconnecting until close()); calling it again changes nothing.
   * Resolves when a connection is open; rejects with ClientClosed if the client closes first.
   * Its rejection is never reported as unhandled, so it may be ignored.
   */
  connect(): Promise<void>;

  /**
   * Close for good: queued calls reject with ClientClosed, calls in flight with ConnectionLost.
   *
   * @param code 1000 (default) or 3000-4999
   * @param reason at most 123 bytes of UTF-8
   */
  close(code?: number, reason?: string): void;

  /**
   * Call `method` with positional arguments and the default timeout. Rejects with RemoteError,
   * CallTimeout, ConnectionLost, QueueFull, ClientClosed, or TypeError (params not JSON).
   */
  call<T = any>(method: string, ...args: unknown[]): Promise<T>;

  /** Call `method` with named or positional params, a timeout, an AbortSignal. */
  callWith<T = any>(method: string, options?: CallOptions): Promise<T>;

  /**
   * Send a notification (no answer) with positional arguments; queued like a call.
   *
   * @throws QueueFull, ClientClosed, or TypeError (params not JSON)
   */
  notify(method: string, ...args: unknown[]): void;

  /** Send a notification with named or positional params. */
  notifyWith(method: string, options?: NotifyOptions): void;

  /**
   * `rpc.proxy.counter.increment(1)` is `rpc.call("counter.increment", 1)`. Only identifiers
   * build names, never `then`, `toJSON`, `toString` or `valueOf` (use call() for those).
   */
  readonly proxy: RemoteProxy;

  /**
   * Let the server call `name`. `fn` gets the params spread (positional) or as one object
   * (named), and `this` (in a `function`, not an arrow) is a CallContext with an AbortSignal.
   * Its result (awaited) is the answer; what it throws goes back as a -32000 error with
   * `data: {type: err.name, message: err.message}`.
   *
   * @returns a function that unregisters it
   * @throws TypeError for a name that is not identifiers joined by dots, or starts with "rpc."
   */
  register(name: string, fn: (this: CallContext, ...args: any[]) => unknown): () => void;

  /**
   * Listen to the server's notifications named `method` (events like "connect" are for
   * addEventListener). `fn` gets the params spread (positional) or as one object (named).
   *
   * @returns a function that unsubscribes
   */
  on(method: string, fn: (...args: any[]) => unknown): () => void;

  /**
   * Join `room` and call `callback(data, meta)` for each of its publications, in offset order
   * and each once (within the server's history). `data` is the JSON value published, or a
   * Uint8Array for bytes; `meta` is `{room, epoch, offset}`. The join goes out at once if the
   * connection is open, else when it opens, before the queued calls; after a reconnection it
   * is made again from the last position, so that missed publications arrive, in order.
   * Subscriptions to one room share one join; the last unsubscribe() leaves the room.
   * Callbacks that throw are reported as "error" events.
   *
   * @example
   * const sub = rpc.subscribe("lobby", (data, { offset }) => show(data, offset), {
   *   onReset: () => reloadLobby(),
   * });
   * await sub.ready;
   * sub.unsubscribe();
   *
   * @param room a non-empty string of at most 200 characters
   * @throws TypeError for an invalid room name or callback; ClientClosed after close()
   */
  subscribe<T = any>(
    room: string,
    callback: (data: T, meta: RoomPosition) => unknown,
    options?: SubscribeOptions,
  ): Subscription;

  /**
   * Publish `data`, a JSON value, to `room`, if the server lets clients publish (else it
   * rejects with RemoteError -32601). Bytes cannot be published (JSON has none): TypeError.
   * Otherwise it rejects as a call does.
   */
  publish(room: string, data: unknown): Promise<Published>;

  addEventListener<K extends keyof RPCEventMap>(
    type: K,
    listener: (this: RPC, event: RPCEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof RPCEventMap>(
    type: K,
    listener: (this: RPC, event: RPCEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;

  /** @internal on() for reserved names (`$/room/...`), for the pub/sub layer. */
  _on(method: string, fn: (...args: any[]) => unknown): () => void;
  /** @internal Run `hook` on each open, before the queue is sent (pub/sub re-joins rooms). */
  _onOpen(hook: (rpc: RPC) => void): () => void;
  /**
   * @internal Run `hook` on each loss or close, after the calls in flight were rejected, and
   * when the client closes for good without a connection.
   */
  _onClose(hook: (rpc: RPC) => void): () => void;
}
