// socketeer.js: the browser client of socketeer's RPC (JSON-RPC 2.0 over WebSocket).
//
// One dependency-free ES module, shipped inside the Python package and served by the server,
// so a page needs nothing else:
//
//     <script type="module">
//       import { RPC } from "/socketeer.js";
//       const rpc = new RPC("/rpc");          // relative: ws:// or wss:// like the page
//       rpc.connect();
//       console.log(await rpc.proxy.counter.increment(1));
//     </script>
//
// The wire contract is docs/rpc-protocol.md; the public API is typed in socketeer.d.ts.
//
// Theory of operation
// ===================
//
// States (`rpc.state`), changed only by connect(), close() and the socket's events and timers:
//
//     idle ──connect()──► connecting ──open──► open
//                           ▲    │ failed,          │ closed, or no answer
//                           │    │ connectTimeout   │ to the heartbeat
//                           │    ▼                  ▼
//                           └─ reconnecting ◄───────┘   (waits a backoff delay, with jitter)
//
//     any state ──close()──► closed, for good (also after a loss when `reconnect` is false)
//
// An outgoing call or notification is in exactly one place:
// - queued (`_queue`): made while the state is not "open"; kept in order, at most `maxQueued`
//   (beyond that, rejected at once with QueueFull), and written when a socket opens, after the
//   open hooks ran, across any number of reconnections;
// - in flight (`_inFlight`, by id): a request written to the current socket, awaiting its answer;
// - settled: resolved or rejected (a notification is settled once written).
//
// Delivery is at most once. When the connection is lost, the calls in flight are rejected with
// ConnectionLost and are NOT sent again: the server may or may not have run them, and only the
// application knows whether repeating one is safe. Queued calls were never sent, so they stay
// queued and go out on the next connection. A call that times out or is aborted leaves the queue
// (if it was never sent) or is cancelled with a `$/cancel` notification (if it was in flight);
// either way its promise rejects at once and a late answer is ignored. close() rejects queued
// calls with ClientClosed (they never ran) and in-flight ones with ConnectionLost.
//
// Every listener on a socket first checks that the socket is still the current one (`_ws`), so a
// socket the client gave up on (close(), a heartbeat or connect timeout) changes nothing more.
//
// A half-open connection (the peer vanished without a close) is noticed by the heartbeat: every
// `heartbeatInterval` ms the client sends a `$/ping` request; without an answer within
// `heartbeatTimeout` ms it closes the socket with code 4000 and reconnects. So a dead connection
// is noticed within heartbeatInterval + heartbeatTimeout (30 s with the defaults), while the
// page's timers run on time (background tabs may throttle them).
//
// Rooms (subscribe(), publish(); wire format in docs/pubsub.md) are a layer above the calls: the
// class Rooms, made by the first subscribe(), listening to `$/room/message` through the internal
// `_on()`, with an open hook and a close hook. For each room with subscriptions it keeps:
// - the position `(epoch, offset)` of the last publication delivered, or where the first join
//   began (null before);
// - the join in flight, if any: a `$/room/join` request with `since` = the position, when there
//   is one. subscribe() sends it at once when open; else the open hook does, before the queued
//   calls. The open hook joins every room again on each connection, so what was published while
//   disconnected is recovered;
// - the publications held out of order, at most MAX_HELD (1000).
// A publication that follows the position (same epoch, offset + 1) is delivered at once, then
// the held ones that follow it; one at or below the position is a duplicate, dropped; any other
// is held. On a joined room with no join in flight, that is a gap (the server dropped
// publications for a slow client) or a new epoch: the room joins again with `since` to recover.
// When a join answers `{epoch, offset, recovered}`:
// - a first join: delivery starts after the answered position;
// - recovered, in the position's epoch: the held publications are delivered in order, and those
//   up to the answered offset that still did not come are lost: a reset;
// - another epoch, `recovered: false` with the answered offset ahead of the position, or held
//   publications dropped over the bound: a reset.
// A reset adopts the answered position (or the newest one seen, after an overflow) and calls the
// subscriptions' onReset(position); delivery resumes after it. Held publications left after a
// gap make another join; those of another epoch or at or below the position are dropped. So each
// publication is delivered once, in offset order, as long as the server's history holds it.
// A join lost with the connection is forgotten (the next connection joins again); a refused one
// rejects `ready`, is an `error` event, and is made again on the next connection. The last
// unsubscribe() of a room sends `$/room/leave` when open (a lost connection took the membership);
// close() ends every subscription.
//
// Sections: constants and errors, codec (JSON-RPC messages), reconnect policy, events, the RPC
// class (transport, outgoing calls, incoming messages, heartbeat, rooms), and the rooms layer.

// Constants

/** The subprotocol the client offers. */
export const SUBPROTOCOL = "socketeer.rpc.v1";

/** JSON-RPC error codes (docs/rpc-protocol.md), as in socketeer's Python RPC layer. */
export const ErrorCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  APPLICATION_ERROR: -32000,
  CALL_TIMEOUT: -32001,
  CALL_CANCELLED: -32002,
  FORBIDDEN: -32003,
  RATE_LIMITED: -32004,
});

/** WebSocket close codes: RFC 6455's (as socketeer.protocol's CloseCode) and the client's own. */
export const CloseCode = Object.freeze({
  NORMAL_CLOSURE: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS_RCVD: 1005,
  ABNORMAL_CLOSURE: 1006,
  INVALID_FRAME_PAYLOAD_DATA: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,
  TLS_HANDSHAKE: 1015,
  /** The client closed the connection: no answer to its heartbeat in time. */
  HEARTBEAT_TIMEOUT: 4000,
});

/** The defaults of the options of `new RPC(url, options)`; durations in milliseconds. */
export const DEFAULTS = Object.freeze({
  timeout: 30_000,
  maxQueued: 1000,
  reconnect: true,
  initialDelay: 1000,
  maxDelay: 30_000,
  backoffFactor: 2,
  jitter: 0.5,
  connectTimeout: 10_000,
  heartbeatInterval: 20_000,
  heartbeatTimeout: 10_000,
});

// setTimeout's delay is a signed 32-bit integer: longer waits would fire at once.
const MAX_TIMER = 2 ** 31 - 1;

// docs/rpc-protocol.md, "Method names".
const METHOD_NAME = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/;
const MAX_METHOD_NAME = 128;
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]*$/;

/** The most messages in a batch from the server; a longer one is refused whole (-32600). */
const MAX_BATCH = 100;

// Errors

/** The base class of the errors this module raises. */
export class RPCError extends Error {}
RPCError.prototype.name = "RPCError";

/** The peer answered a call with a JSON-RPC error. */
export class RemoteError extends RPCError {
  /**
   * @param {string | null} method the method called, if known
   * @param {{code: number, message: string, data?: unknown}} error the JSON-RPC error object
   */
  constructor(method, error) {
    super(error.message);
    /** The method called, or null for an error the server sent without a request id. */
    this.method = method;
    /** The JSON-RPC error code (ErrorCode). */
    this.code = error.code;
    /** The error's `data`, or undefined. */
    this.data = error.data;
    const data = /** @type {{type?: unknown} | undefined} */ (error.data);
    /** The remote exception's type name (`data.type`: "ValueError", "TypeError", ...) or null. */
    this.typeName =
      data !== null && typeof data === "object" && typeof data.type === "string"
        ? data.type
        : null;
  }
}
RemoteError.prototype.name = "RemoteError";

/** A call got no answer within its timeout. Its `name` is "TimeoutError", as on the web. */
export class CallTimeout extends RPCError {
  /**
   * @param {string} method
   * @param {number} timeout milliseconds
   */
  constructor(method, timeout) {
    super(`call ${method} timed out after ${timeout} ms`);
    this.method = method;
    this.timeout = timeout;
  }
}
CallTimeout.prototype.name = "TimeoutError";

/** The connection closed while a call was in flight: it may or may not have run. */
export class ConnectionLost extends RPCError {
  /**
   * @param {string} method
   * @param {number} code the close code
   * @param {string} reason the close reason
   */
  constructor(method, code, reason) {
    const why = reason ? `code ${code}, ${reason}` : `code ${code}`;
    super(`connection lost (${why}) while call ${method} was in flight: it may have run`);
    this.method = method;
    this.code = code;
    this.reason = reason;
  }
}
ConnectionLost.prototype.name = "ConnectionLost";

/** A call or notification was refused because `maxQueued` messages already wait. */
export class QueueFull extends RPCError {
  /**
   * @param {string} method
   * @param {number} limit
   */
  constructor(method, limit) {
    super(`cannot queue ${method}: ${limit} messages already wait for the connection`);
    this.method = method;
    this.limit = limit;
  }
}
QueueFull.prototype.name = "QueueFull";

/** The client is closed (close(), or a loss with `reconnect: false`): nothing was sent. */
export class ClientClosed extends RPCError {}
ClientClosed.prototype.name = "ClientClosed";

// Codec: JSON-RPC 2.0 messages, as text

// A UTF-16 surrogate without its pair: JSON.stringify() escapes it, but it is not Unicode text,
// and the Python end refuses it (docs/rpc-protocol.md, "Transport").
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * JSON.stringify(), refusing what JSON cannot carry instead of changing it: NaN and the
 * infinities (which it would write as null) and strings with lone surrogates.
 *
 * @param {unknown} value
 * @returns {string | undefined} undefined for a function or a symbol, as JSON.stringify()
 * @throws {TypeError}
 */
function stringify(value) {
  return JSON.stringify(value, (key, item) => {
    if (typeof item === "number" && !Number.isFinite(item)) {
      throw new TypeError(`${item} is not a JSON number`);
    }
    if ((typeof item === "string" && LONE_SURROGATE.test(item)) || LONE_SURROGATE.test(key)) {
      throw new TypeError("a string with a lone UTF-16 surrogate is not JSON text");
    }
    return item;
  });
}

/**
 * `text` with its lone surrogates replaced by U+FFFD, for details echoed to the peer.
 *
 * @param {string} text
 */
function wellFormed(text) {
  if (!LONE_SURROGATE.test(text)) {
    return text;
  }
  let result = "";
  for (const char of text) {
    // The string iterator yields a lone surrogate alone, a pair as one character.
    const code = char.charCodeAt(0);
    result += char.length === 1 && code >= 0xd800 && code <= 0xdfff ? "\uFFFD" : char;
  }
  return result;
}

/**
 * The members of a request or notification after `"jsonrpc"`, before `"id"`: encoded when the
 * call is made (so unserializable params fail at once), completed when it is written.
 *
 * @param {string} method
 * @param {unknown[] | Record<string, unknown> | undefined} params
 * @returns {string}
 */
function encodeBody(method, params) {
  if (typeof method !== "string") {
    throw new TypeError(`method must be a string, got ${typeof method}`);
  }
  let body = `"method":${stringify(method)}`;
  if (params === undefined) {
    return body;
  }
  if (params === null || typeof params !== "object") {
    throw new TypeError(`params of ${method} must be an array, an object or undefined`);
  }
  if (!Array.isArray(params) || params.length > 0) {
    try {
      body += `,"params":${stringify(params)}`;
    } catch (exc) {
      throw new TypeError(`params of ${method} are not JSON: ${errorMessage(exc)}`, {
        cause: exc,
      });
    }
  }
  return body;
}

/**
 * @param {string} body
 * @param {number} id
 */
function encodeRequest(body, id) {
  return `{"jsonrpc":"2.0",${body},"id":${id}}`;
}

/** @param {string} body */
function encodeNotification(body) {
  return `{"jsonrpc":"2.0",${body}}`;
}

/**
 * @param {Id} id
 * @param {unknown} result
 * @returns {string}
 */
function encodeResult(id, result) {
  let text;
  try {
    // JSON-RPC requires "result": a function that returns nothing answers null.
    text = stringify(result === undefined ? null : result);
  } catch (exc) {
    return encodeError(id, ErrorCode.INTERNAL_ERROR, `result is not JSON: ${errorMessage(exc)}`);
  }
  if (text === undefined) {
    return encodeError(id, ErrorCode.INTERNAL_ERROR, `result is not JSON: a ${typeof result}`);
  }
  return `{"jsonrpc":"2.0","result":${text},"id":${JSON.stringify(id)}}`;
}

// The "message" of the errors JSON-RPC 2.0 defines, word for word; the detail goes in "data".
/** @type {Map<number, string>} */
const STANDARD_MESSAGES = new Map([
  [ErrorCode.PARSE_ERROR, "Parse error"],
  [ErrorCode.INVALID_REQUEST, "Invalid Request"],
  [ErrorCode.METHOD_NOT_FOUND, "Method not found"],
  [ErrorCode.INVALID_PARAMS, "Invalid params"],
  [ErrorCode.INTERNAL_ERROR, "Internal error"],
]);

/**
 * An error response with one of the codes JSON-RPC 2.0 defines, its detail in `data`.
 *
 * @param {Id} id
 * @param {number} code
 * @param {string} detail
 * @returns {string}
 */
function encodeError(id, code, detail) {
  const error = { code, message: STANDARD_MESSAGES.get(code), data: wellFormed(detail) };
  return JSON.stringify({ jsonrpc: "2.0", error, id });
}

/**
 * The answer to a call whose function threw `exc`: -32000, with its name and message.
 *
 * @param {Id} id
 * @param {unknown} exc
 * @returns {string}
 */
function encodeException(id, exc) {
  const type = wellFormed(exc instanceof Error || hasStringName(exc) ? exc.name : "Error");
  const message = wellFormed(errorMessage(exc));
  const error = {
    code: ErrorCode.APPLICATION_ERROR,
    message: message || type,
    data: { type, message },
  };
  return JSON.stringify({ jsonrpc: "2.0", error, id });
}

/**
 * @param {unknown} exc
 * @returns {exc is {name: string}}
 */
function hasStringName(exc) {
  return (
    exc !== null && typeof exc === "object" && typeof (/** @type {any} */ (exc).name) === "string"
  );
}

/** @param {unknown} exc */
function errorMessage(exc) {
  if (exc !== null && typeof exc === "object" && "message" in exc) {
    return String(exc.message);
  }
  return String(exc);
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * @param {unknown} id
 * @returns {id is Id}
 */
function isId(id) {
  if (typeof id === "string") {
    return !LONE_SURROGATE.test(id); // It could not be sent back.
  }
  return id === null || (typeof id === "number" && Number.isFinite(id));
}

/**
 * @typedef {{kind: "request", id: Id, method: string, params: Params | undefined}
 *   | {kind: "notification", method: string, params: Params | undefined}
 *   | {kind: "result", id: Id, result: unknown}
 *   | {kind: "error", id: Id, error: {code: number, message: string, data?: unknown}}
 *   | {kind: "invalid", id: Id, detail: string, responseId?: Id}} Item
 */

const BAD_ID = '"id" member must be a string, a finite number or null';
const BAD_VERSION = '"jsonrpc" member must be "2.0"';

/**
 * Classify one JSON value the peer sent, as socketeer.rpc.messages does: a request or a
 * notification if it has "method", a response if it has "result" or "error", else invalid.
 * An invalid response is answered with id null (its id names one of our calls, not one of the
 * peer's), and keeps that id as `responseId`, so that the call it answers fails.
 *
 * @param {unknown} value
 * @returns {Item}
 */
function classify(value) {
  if (!isObject(value)) {
    const type = Array.isArray(value) ? "an array" : value === null ? "null" : `a ${typeof value}`;
    return { kind: "invalid", id: null, detail: `expected an object, got ${type}` };
  }
  if ("method" in value) {
    return classifyCall(value);
  }
  if ("result" in value || "error" in value) {
    return classifyResponse(value);
  }
  return { kind: "invalid", id: null, detail: 'missing "method" member' };
}

/** @param {Record<string, unknown>} value @returns {Item} */
function classifyCall(value) {
  const id = "id" in value ? value.id : null;
  if (!isId(id)) {
    return { kind: "invalid", id: null, detail: BAD_ID };
  }
  if (value.jsonrpc !== "2.0") {
    return { kind: "invalid", id, detail: BAD_VERSION };
  }
  const { method, params } = value;
  if (typeof method !== "string") {
    return { kind: "invalid", id, detail: '"method" member must be a string' };
  }
  if ("params" in value && (params === null || typeof params !== "object")) {
    return { kind: "invalid", id, detail: '"params" member must be an array or an object' };
  }
  const structured = /** @type {Params | undefined} */ (params);
  if ("id" in value) {
    return { kind: "request", id, method, params: structured };
  }
  return { kind: "notification", method, params: structured };
}

/** @param {Record<string, unknown>} value @returns {Item} */
function classifyResponse(value) {
  if (!("id" in value)) {
    return { kind: "invalid", id: null, detail: 'response without "id" member' };
  }
  const id = value.id;
  if (!isId(id)) {
    return { kind: "invalid", id: null, detail: BAD_ID };
  }
  /** @param {string} detail @returns {Item} */
  const invalid = (detail) => ({ kind: "invalid", id: null, detail, responseId: id });
  if (value.jsonrpc !== "2.0") {
    return invalid(BAD_VERSION);
  }
  if ("result" in value) {
    if ("error" in value) {
      return invalid('response with both "result" and "error" members');
    }
    return { kind: "result", id, result: value.result };
  }
  const error = value.error;
  if (!isObject(error)) {
    return invalid('"error" member must be an object');
  }
  if (!Number.isInteger(error.code)) {
    return invalid('"error" member must have an integer "code"');
  }
  if (typeof error.message !== "string") {
    return invalid('"error" member must have a string "message"');
  }
  return {
    kind: "error",
    id,
    error: /** @type {{code: number, message: string, data?: unknown}} */ (error),
  };
}

// Reconnect policy

/**
 * The delay before reconnection attempt `attempt` (1, 2, ...): exponential, capped, and lowered
 * by a random part of up to `jitter` (0..1) of it, so that clients that lost the same server do
 * not all come back at once.
 *
 * @param {number} attempt
 * @param {{initialDelay: number, maxDelay: number, backoffFactor: number, jitter: number}} policy
 * @param {() => number} random
 */
export function backoffDelay(attempt, policy, random) {
  const { initialDelay, maxDelay, backoffFactor, jitter } = policy;
  const ceiling = Math.min(initialDelay * backoffFactor ** (attempt - 1), maxDelay);
  return Math.round(ceiling * (1 - jitter * random()));
}

// Events

/** Dispatched when a connection opens. */
export class ConnectEvent extends Event {
  /**
   * @param {string} url
   * @param {string} protocol the subprotocol the server selected
   */
  constructor(url, protocol) {
    super("connect");
    this.url = url;
    this.protocol = protocol;
  }
}

/** Dispatched when an open connection closes (or is given up on), whoever closed it. */
export class DisconnectEvent extends Event {
  /**
   * @param {number} code the close code (4000: no answer to the heartbeat)
   * @param {string} reason the close reason
   * @param {boolean} wasClean whether the closing handshake completed (or close() was called)
   * @param {boolean} willReconnect whether the client will reconnect
   */
  constructor(code, reason, wasClean, willReconnect) {
    super("disconnect");
    this.code = code;
    this.reason = reason;
    this.wasClean = wasClean;
    this.willReconnect = willReconnect;
  }
}

/** Dispatched when a reconnection attempt is scheduled: after a loss, or a failed attempt. */
export class ReconnectingEvent extends Event {
  /**
   * @param {number} attempt 1 for the first attempt since the last open connection
   * @param {number} delay milliseconds before the attempt
   */
  constructor(attempt, delay) {
    super("reconnecting");
    this.attempt = attempt;
    this.delay = delay;
  }
}

/** Dispatched for an error no promise can carry: a failed socket, a bad message, a listener's. */
export class RPCErrorEvent extends Event {
  /** @param {unknown} error */
  constructor(error) {
    super("error");
    this.error = error;
    this.message = errorMessage(error);
  }
}

// The client

/**
 * @typedef {string | number | null} Id
 * @typedef {unknown[] | Record<string, unknown>} Params
 * @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} State
 * @typedef {(handler: () => void, ms: number) => unknown} SetTimeout
 * @typedef {(handle: unknown) => void} ClearTimeout
 * @typedef {{promise: Promise<void>, resolve: () => void, reject: (e: unknown) => void}} Deferred
 *
 * @typedef {object} Outgoing
 * @property {string} method
 * @property {string} body encodeBody()'s
 * @property {number | null} id set when written
 * @property {((value: unknown) => void) | null} resolve null for a notification
 * @property {(reason: unknown) => void} reject
 * @property {unknown} timer
 * @property {(() => void) | null} unlisten removes the abort listener
 *
 * @typedef {object} CallContext
 * @property {AbortSignal} signal aborted by `$/cancel` or when the connection is lost
 * @property {Id} id the request's id, or undefined for a notification
 * @property {string} method
 */

/**
 * A JSON-RPC client over a WebSocket that reconnects by itself; see the theory of operation at
 * the top of this module.
 */
export class RPC extends EventTarget {
  /**
   * @param {string | URL} url ws:// or wss://; or http(s):// or relative to the page, for the
   *   server of the page (wss:// for an https:// page)
   * @param {object} [options]
   * @param {number} [options.timeout] default timeout of calls, ms (0 or Infinity: none)
   * @param {number} [options.maxQueued] most calls and notifications waiting for a connection
   * @param {boolean} [options.reconnect] reconnect after a loss or a failed attempt
   * @param {number} [options.initialDelay] delay before the first reconnection attempt, ms
   * @param {number} [options.maxDelay] longest delay between attempts, ms
   * @param {number} [options.backoffFactor] delay growth between attempts (>= 1)
   * @param {number} [options.jitter] random part of a delay, 0..1
   * @param {number} [options.connectTimeout] longest opening handshake, ms (0: none)
   * @param {number} [options.heartbeatInterval] between heartbeats, ms (0: no heartbeat)
   * @param {number} [options.heartbeatTimeout] longest wait for a heartbeat's answer, ms
   * @param {any} [options.WebSocket] the WebSocket constructor (tests pass a fake)
   * @param {SetTimeout} [options.setTimeout] for tests
   * @param {ClearTimeout} [options.clearTimeout] for tests
   * @param {() => number} [options.random] for tests: 0 <= random() < 1
   */
  constructor(url, options = {}) {
    super();
    /** The resolved ws:// or wss:// URL. */
    this.url = resolveURL(url);
    /** The options in force, defaults included. */
    this.options = Object.freeze(readOptions(options));
    const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketClass !== "function") {
      throw new TypeError("no WebSocket class here: pass one as options.WebSocket");
    }
    this._WebSocket = WebSocketClass;
    const setTimer = options.setTimeout ?? globalThis.setTimeout;
    const clearTimer = options.clearTimeout ?? globalThis.clearTimeout;
    // Called as plain functions: window.setTimeout refuses another `this`.
    /** @type {SetTimeout} */
    this._setTimeout = (handler, ms) => setTimer(handler, ms);
    /** @type {ClearTimeout} */
    this._clearTimeout = (handle) => clearTimer(/** @type {any} */ (handle));
    this._random = options.random ?? Math.random;

    /** @type {State} */
    this._state = "idle";
    /** @type {any} the current socket, or null */
    this._ws = null;
    /** @type {Set<Outgoing>} */
    this._queue = new Set();
    /** @type {Map<number, Outgoing>} */
    this._inFlight = new Map();
    /** @type {Map<Id, AbortController>} calls from the peer, running */
    this._incoming = new Map();
    this._lastId = 0;
    this._attempt = 0; // failed attempts since the last open connection
    /** @type {unknown} */
    this._connectTimer = null;
    /** @type {unknown} */
    this._reconnectTimer = null;
    /** @type {unknown} */
    this._heartbeatTimer = null;
    /** @type {number | null} the id of the unanswered $/ping */
    this._pingId = null;
    /** @type {Deferred | null} connect()'s promise, until a connection opens */
    this._opened = null;
    /** @type {Map<string, Function>} */
    this._methods = new Map();
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
    /** @type {Set<(rpc: RPC) => void>} */
    this._openHooks = new Set();
    /** @type {Set<(rpc: RPC) => void>} */
    this._closeHooks = new Set();
    /** @type {Function | null} */
    this._proxy = null;
    /** @type {Rooms | null} the pub/sub layer, made by the first subscribe() */
    this._rooms = null;
  }

  /** @returns {State} "idle", "connecting", "open", "reconnecting" or "closed" */
  get state() {
    return this._state;
  }

  /** How many calls and notifications wait for a connection. */
  get queued() {
    return this._queue.size;
  }

  /** How many calls were written and await their answer. */
  get inFlight() {
    return this._inFlight.size;
  }

  // Connection

  /**
   * Start connecting (and reconnecting, until close()). Calling it again changes nothing.
   *
   * @returns {Promise<void>} resolves when a connection is open; rejects with ClientClosed if
   *   the client closes first. Ignoring it is safe: its rejection is never reported as unhandled.
   */
  connect() {
    if (this._state === "closed") {
      return handled(Promise.reject(new ClientClosed("client is closed")));
    }
    if (this._state === "open") {
      return Promise.resolve();
    }
    if (this._opened === null) {
      /** @type {any} */
      const deferred = {};
      deferred.promise = handled(
        new Promise((resolve, reject) => Object.assign(deferred, { resolve, reject })),
      );
      this._opened = deferred;
    }
    const { promise } = /** @type {Deferred} */ (this._opened);
    if (this._state === "idle") {
      this._open();
    }
    return promise;
  }

  /**
   * Close the connection and stop reconnecting, for good: queued calls reject with
   * ClientClosed, calls in flight with ConnectionLost, and later calls with ClientClosed.
   *
   * @param {number} [code] 1000 or 3000-4999
   * @param {string} [reason] at most 123 bytes of UTF-8
   */
  close(code = CloseCode.NORMAL_CLOSURE, reason = "") {
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError(`close code must be 1000 or 3000-4999, got ${code}`);
    }
    if (new TextEncoder().encode(reason).length > 123) {
      throw new RangeError("close reason must be at most 123 bytes of UTF-8");
    }
    if (this._state === "closed") {
      return;
    }
    this._shutdown(new ClientClosed("client is closed"), code, reason, true);
  }

  /** Open a socket; the state becomes "connecting". */
  _open() {
    this._reconnectTimer = null;
    this._state = "connecting";
    let ws;
    try {
      ws = new this._WebSocket(this.url, SUBPROTOCOL);
    } catch (exc) {
      // A URL the browser refuses (a blocked port, mixed content): retrying would not help.
      this._emitError(exc);
      const error = new ClientClosed(`cannot open ${this.url}: ${errorMessage(exc)}`);
      this._shutdown(error, CloseCode.ABNORMAL_CLOSURE, "", false);
      return;
    }
    this._ws = ws;
    ws.binaryType = "arraybuffer";
    /** @type {(type: string, handler: (event: any) => void) => void} */
    const listen = (type, handler) => {
      // A socket the client gave up on changes nothing more.
      ws.addEventListener(type, (/** @type {Event} */ event) => {
        if (this._ws === ws) {
          handler(event);
        }
      });
    };
    listen("open", () => this._handleOpen(ws));
    listen("message", (event) => this._receive(ws, event.data));
    listen("error", () => this._emitError(new RPCError(`WebSocket error on ${this.url}`)));
    listen("close", (event) => this._lost(ws, event.code, event.reason, event.wasClean));
    const { connectTimeout } = this.options;
    if (hasTimer(connectTimeout)) {
      this._connectTimer = this._setTimeout(() => {
        this._emitError(new RPCError(`no connection to ${this.url} within ${connectTimeout} ms`));
        this._lost(ws, CloseCode.ABNORMAL_CLOSURE, "connect timeout", false);
      }, connectTimeout);
    }
  }

  /** @param {any} ws */
  _handleOpen(ws) {
    this._clearTimer("_connectTimer");
    this._state = "open";
    this._attempt = 0;
    for (const hook of [...this._openHooks]) {
      this._guard(hook, this);
    }
    if (this._ws !== ws) {
      return; // A hook closed the client.
    }
    for (const item of this._queue) {
      this._queue.delete(item);
      this._write(item);
    }
    if (this._ws !== ws) {
      return; // An error listener closed the client.
    }
    this._startHeartbeat(ws);
    const opened = this._opened;
    this._opened = null;
    opened?.resolve();
    this.dispatchEvent(new ConnectEvent(this.url, ws.protocol));
  }

  /**
   * The current socket closed, or the client gave up on it: settle what depended on it, then
   * reconnect or close for good.
   *
   * @param {any} ws
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   */
  _lost(ws, code, reason, wasClean) {
    if (!this.options.reconnect) {
      const why = reason ? `code ${code}, ${reason}` : `code ${code}`;
      const error = new ClientClosed(`connection closed (${why}) and reconnect is off`);
      this._shutdown(error, code, reason, wasClean);
      return;
    }
    const wasOpen = this._state === "open";
    // Calls made from here on (by close hooks, by disconnect listeners) are queued.
    this._state = "reconnecting";
    this._detach(ws, code, reason);
    if (wasOpen) {
      this.dispatchEvent(new DisconnectEvent(code, reason, wasClean, true));
    }
    // A disconnect listener may have called close().
    if (this._state === "reconnecting" && this._reconnectTimer === null) {
      this._attempt += 1;
      const delay = Math.min(backoffDelay(this._attempt, this.options, this._random), MAX_TIMER);
      this._reconnectTimer = this._setTimeout(() => this._open(), delay);
      this.dispatchEvent(new ReconnectingEvent(this._attempt, delay));
    }
  }

  /**
   * Close the client for good.
   *
   * @param {ClientClosed} error for queued calls, and connect()'s promise
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   */
  _shutdown(error, code, reason, wasClean) {
    const wasOpen = this._state === "open";
    this._state = "closed";
    this._clearTimer("_reconnectTimer");
    if (this._ws !== null) {
      this._detach(this._ws, code, reason);
    } else {
      this._runCloseHooks();
    }
    for (const item of this._queue) {
      this._settle(item);
      item.reject(error);
    }
    this._queue.clear();
    const opened = this._opened;
    this._opened = null;
    opened?.reject(error);
    if (wasOpen) {
      this.dispatchEvent(new DisconnectEvent(code, reason, wasClean, false));
    }
  }

  /**
   * Forget socket `ws`: close it if need be, reject the calls in flight, abort the calls from
   * the peer, run the close hooks.
   *
   * @param {any} ws
   * @param {number} code
   * @param {string} reason
   */
  _detach(ws, code, reason) {
    this._ws = null;
    this._clearTimer("_connectTimer");
    this._clearTimer("_heartbeatTimer");
    this._pingId = null;
    try {
      // Harmless if it is closed already; a half-open one would keep the browser waiting.
      ws.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000, reason);
    } catch {
      // Closing a socket that failed may throw in some implementations; it is gone either way.
    }
    const calls = [...this._inFlight.values()];
    this._inFlight.clear();
    for (const call of calls) {
      this._settle(call);
      call.reject(new ConnectionLost(call.method, code, reason));
    }
    const incoming = [...this._incoming.values()];
    this._incoming.clear();
    for (const controller of incoming) {
      controller.abort(new DOMException("connection lost", "AbortError"));
    }
    this._runCloseHooks();
  }

  /** Run the close hooks; what one throws is an `error` event. */
  _runCloseHooks() {
    for (const hook of [...this._closeHooks]) {
      this._guard(hook, this);
    }
  }

  // Outgoing calls and notifications

  /**
   * Call `method` with positional arguments and the default timeout.
   *
   * @param {string} method
   * @param {...unknown} args
   * @returns {Promise<any>} the result; rejects with RemoteError, CallTimeout, ConnectionLost,
   *   QueueFull, ClientClosed, or TypeError for params that are not JSON
   */
  call(method, ...args) {
    return this.callWith(method, { params: args });
  }

  /**
   * Call `method` with per-call options.
   *
   * @param {string} method
   * @param {object} [options]
   * @param {Params} [options.params] an array (positional) or an object (named)
   * @param {number} [options.timeout] ms; 0 or Infinity: none; default: the client's `timeout`
   * @param {AbortSignal} [options.signal] aborting it rejects the call with `signal.reason`
   * @returns {Promise<any>}
   */
  callWith(method, { params, timeout = this.options.timeout, signal } = {}) {
    return new Promise((resolve, reject) => {
      checkDuration("timeout", timeout);
      signal?.throwIfAborted();
      const body = encodeBody(method, params);
      /** @type {Outgoing} */
      const call = { method, body, id: null, resolve, reject, timer: null, unlisten: null };
      if (hasTimer(timeout)) {
        call.timer = this._setTimeout(() => {
          this._abandon(call, new CallTimeout(method, timeout));
        }, timeout);
      }
      if (signal !== undefined) {
        const onAbort = () => this._abandon(call, signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        call.unlisten = () => signal.removeEventListener("abort", onAbort);
      }
      try {
        this._enqueue(call);
      } catch (exc) {
        this._settle(call);
        throw exc;
      }
    });
  }

  /**
   * Send a notification (a call without an answer) with positional arguments. It is queued
   * while not connected, like a call.
   *
   * @param {string} method
   * @param {...unknown} args
   * @throws {QueueFull | ClientClosed | TypeError}
   */
  notify(method, ...args) {
    this.notifyWith(method, { params: args });
  }

  /**
   * Send a notification with named (an object) or positional (an array) params.
   *
   * @param {string} method
   * @param {{params?: Params}} [options]
   * @throws {QueueFull | ClientClosed | TypeError}
   */
  notifyWith(method, { params } = {}) {
    const body = encodeBody(method, params);
    /** @type {Outgoing} */
    const notification = {
      method,
      body,
      id: null,
      resolve: null,
      reject: () => {}, // dropped by close(): a notification has no promise to reject
      timer: null,
      unlisten: null,
    };
    this._enqueue(notification);
  }

  /**
   * A proxy that turns property paths into method names:
   * `rpc.proxy.counter.increment(1)` is `rpc.call("counter.increment", 1)`. Only identifiers
   * (`[A-Za-z][A-Za-z0-9_]*`) build names, and never `then`, `toJSON`, `toString` or `valueOf`,
   * which JavaScript looks up by itself (`await`, `JSON.stringify`, ...): use call() for those.
   *
   * @returns {any}
   */
  get proxy() {
    this._proxy ??= remoteProxy(this, "");
    return this._proxy;
  }

  /**
   * Write `item` now if the connection is open, else queue it.
   *
   * @param {Outgoing} item
   */
  _enqueue(item) {
    if (this._state === "closed") {
      throw new ClientClosed(`cannot send ${item.method}: client is closed`);
    }
    if (this._state === "open") {
      this._write(item);
    } else if (this._queue.size >= this.options.maxQueued) {
      throw new QueueFull(item.method, this.options.maxQueued);
    } else {
      this._queue.add(item);
    }
  }

  /**
   * Write a call or a notification on the open socket.
   *
   * @param {Outgoing} item
   */
  _write(item) {
    if (item.resolve === null) {
      this._send(encodeNotification(item.body));
      return;
    }
    const id = ++this._lastId;
    item.id = id;
    this._inFlight.set(id, item);
    if (!this._send(encodeRequest(item.body, id))) {
      this._inFlight.delete(id);
      this._settle(item);
      item.reject(new RPCError(`cannot send ${item.method}: the socket refused it`));
    }
  }

  /**
   * Give up on a call (timeout, abort): unqueue it, or cancel it if it is in flight.
   *
   * @param {Outgoing} call
   * @param {unknown} error
   */
  _abandon(call, error) {
    if (call.id === null) {
      this._queue.delete(call);
    } else if (this._inFlight.get(call.id) === call) {
      this._inFlight.delete(call.id);
      this._send(`{"jsonrpc":"2.0","method":"$/cancel","params":{"id":${call.id}}}`);
    }
    this._settle(call);
    call.reject(error);
  }

  /**
   * Stop a call's timer and abort listener.
   *
   * @param {Outgoing} call
   */
  _settle(call) {
    if (call.timer !== null) {
      this._clearTimeout(call.timer);
      call.timer = null;
    }
    call.unlisten?.();
    call.unlisten = null;
  }

  /**
   * Write `text` on the current socket, if open.
   *
   * @param {string} text
   * @returns {boolean} whether it was written
   */
  _send(text) {
    if (this._state !== "open") {
      return false;
    }
    try {
      /** @type {any} */ (this._ws).send(text);
      return true;
    } catch (exc) {
      this._emitError(exc);
      return false;
    }
  }

  // Incoming messages

  /**
   * Make `fn` callable by the peer as `name`. It gets the params spread (positional) or as one
   * object (named), and `this` is a CallContext whose `signal` aborts on `$/cancel` or a lost
   * connection (use a `function`, not an arrow, to read it). Its return value (or what its
   * promise resolves to) is the result; what it throws goes back as a -32000 error with
   * `data: {type: err.name, message: err.message}`.
   *
   * @param {string} name
   * @param {(this: CallContext, ...args: any[]) => unknown} fn
   * @returns {() => void} unregisters it
   */
  register(name, fn) {
    checkMethodName(name);
    if (typeof fn !== "function") {
      throw new TypeError(`${name}: a function is needed, got ${typeof fn}`);
    }
    if (this._methods.has(name)) {
      throw new Error(`${name} is registered already`);
    }
    this._methods.set(name, fn);
    return () => {
      if (this._methods.get(name) === fn) {
        this._methods.delete(name);
      }
    };
  }

  /**
   * Listen to the peer's notifications named `method` (not events: see addEventListener).
   * `fn` gets the params spread (positional) or as one object (named).
   *
   * @param {string} method
   * @param {(...args: any[]) => unknown} fn
   * @returns {() => void} unsubscribes
   */
  on(method, fn) {
    checkMethodName(method);
    return this._on(method, fn);
  }

  /**
   * on() without the check of the name, for the layers above (`$/room/...` notifications).
   *
   * @param {string} method
   * @param {(...args: any[]) => unknown} fn
   * @returns {() => void}
   */
  _on(method, fn) {
    if (typeof fn !== "function") {
      throw new TypeError(`${method}: a function is needed, got ${typeof fn}`);
    }
    let listeners = this._listeners.get(method);
    if (listeners === undefined) {
      listeners = new Set();
      this._listeners.set(method, listeners);
    }
    // Wrapped, so that the same function may listen twice and unsubscribe once.
    const listener = (/** @type {any[]} */ ...args) => fn(...args);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this._listeners.get(method) === listeners) {
        this._listeners.delete(method);
      }
    };
  }

  /**
   * Run `hook(rpc)` each time a connection opens, before the queue is written: the pub/sub
   * layer re-joins its rooms there. Calls it makes go out before the queued ones.
   *
   * @param {(rpc: RPC) => void} hook
   * @returns {() => void} removes it
   */
  _onOpen(hook) {
    this._openHooks.add(hook);
    return () => this._openHooks.delete(hook);
  }

  /**
   * Run `hook(rpc)` each time a connection is lost or closed, after the calls in flight were
   * rejected; and when the client closes for good without a connection. The state is then
   * "closed" if the client closed for good, else "reconnecting".
   *
   * @param {(rpc: RPC) => void} hook
   * @returns {() => void} removes it
   */
  _onClose(hook) {
    this._closeHooks.add(hook);
    return () => this._closeHooks.delete(hook);
  }

  /**
   * @param {any} ws
   * @param {unknown} data
   */
  _receive(ws, data) {
    if (typeof data !== "string") {
      this._send(encodeError(null, ErrorCode.PARSE_ERROR, "binary message"));
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch (exc) {
      const detail = `invalid JSON: ${errorMessage(exc)}`;
      this._emitError(new RPCError(`the server sent ${detail}`));
      this._send(encodeError(null, ErrorCode.PARSE_ERROR, detail));
      return;
    }
    if (!Array.isArray(message)) {
      const answer = this._dispatch(ws, classify(message));
      if (answer !== undefined) {
        Promise.resolve(answer).then((text) => this._answer(ws, text));
      }
    } else if (message.length === 0) {
      this._send(encodeError(null, ErrorCode.INVALID_REQUEST, "empty batch"));
    } else if (message.length > MAX_BATCH) {
      const detail = `batch with ${message.length} messages exceeds limit of ${MAX_BATCH} messages`;
      this._send(encodeError(null, ErrorCode.INVALID_REQUEST, detail));
    } else {
      const answers = message.map((item) => this._dispatch(ws, classify(item)));
      if (answers.some((answer) => answer !== undefined)) {
        Promise.all(answers).then((texts) => {
          const batch = texts.filter((text) => text !== undefined);
          this._answer(ws, batch.length > 0 ? `[${batch.join(",")}]` : undefined);
        });
      }
    }
  }

  /**
   * Send an answer, unless its connection is gone (its id belongs to that connection).
   *
   * @param {any} ws
   * @param {string | undefined} text
   */
  _answer(ws, text) {
    if (text !== undefined && this._ws === ws) {
      this._send(text);
    }
  }

  /**
   * Handle one message (or batch element).
   *
   * @param {any} ws
   * @param {Item} item
   * @returns {string | Promise<string | undefined> | undefined} the answer, if any
   */
  _dispatch(ws, item) {
    switch (item.kind) {
      case "request":
        return this._onRequest(ws, item.id, item.method, item.params);
      case "notification":
        this._onNotification(item.method, item.params);
        return undefined;
      case "invalid":
        if (item.responseId !== undefined) {
          this._onResponse(item.responseId, item);
        }
        return encodeError(item.id, ErrorCode.INVALID_REQUEST, item.detail);
      default:
        this._onResponse(item.id, item);
        return undefined;
    }
  }

  /**
   * A response (maybe a broken one) to our request `id`.
   *
   * @param {Id} id
   * @param {Item} item a "result", an "error", or an "invalid" response
   */
  _onResponse(id, item) {
    if (typeof id === "number" && id === this._pingId) {
      // Any answer, even an error, shows that the connection works both ways.
      this._pingId = null;
      this._clearTimer("_heartbeatTimer");
      this._startHeartbeat(this._ws);
      return;
    }
    const call = typeof id === "number" ? this._inFlight.get(id) : undefined;
    if (call !== undefined) {
      this._inFlight.delete(/** @type {number} */ (id));
      this._settle(call);
    }
    if (item.kind === "invalid") {
      const error = new RPCError(`invalid response from the server: ${item.detail}`);
      this._emitError(error);
      call?.reject(error);
    } else if (item.kind === "error") {
      if (call !== undefined) {
        call.reject(new RemoteError(call.method, item.error));
      } else if (id === null) {
        // The server could not tell which request this is about (a parse error, say).
        this._emitError(new RemoteError(null, item.error));
      }
    } else if (item.kind === "result") {
      call?.resolve?.(item.result);
    }
    // Without a call, a late answer to a call that timed out or was aborted: ignored.
  }

  /**
   * A notification: the listeners of on(), and a function registered under its name.
   *
   * @param {string} method
   * @param {Params | undefined} params
   */
  _onNotification(method, params) {
    if (method === "$/cancel") {
      const id = isObject(params) ? params.id : undefined;
      if (isId(id)) {
        this._incoming
          .get(id)
          ?.abort(new DOMException("call cancelled by the server", "AbortError"));
        this._incoming.delete(id);
      }
      return;
    }
    const args = spread(params);
    for (const listener of [...(this._listeners.get(method) ?? [])]) {
      this._guard(listener, ...args);
    }
    const fn = this._methods.get(method);
    if (fn !== undefined) {
      const context = { signal: new AbortController().signal, id: undefined, method };
      this._guard(() => fn.apply(context, args));
    }
  }

  /**
   * A request from the peer: run what is registered, answer with its result or error.
   *
   * @param {any} ws
   * @param {Id} id
   * @param {string} method
   * @param {Params | undefined} params
   * @returns {string | Promise<string | undefined>}
   */
  _onRequest(ws, id, method, params) {
    if (method === "$/ping") {
      return encodeResult(id, "pong");
    }
    const fn = this._methods.get(method);
    if (fn === undefined) {
      const name =
        method.length > MAX_METHOD_NAME ? `${method.slice(0, MAX_METHOD_NAME)}…` : method;
      return encodeError(id, ErrorCode.METHOD_NOT_FOUND, name);
    }
    const controller = new AbortController();
    this._incoming.set(id, controller);
    const { signal } = controller;
    /** @type {CallContext} */
    const context = { signal, id, method };
    const aborted = new Promise((resolve) => {
      signal.addEventListener("abort", () => resolve(undefined), { once: true });
    });
    const run = async () => {
      try {
        const result = await fn.apply(context, spread(params));
        return signal.aborted ? undefined : encodeResult(id, result);
      } catch (exc) {
        return signal.aborted ? undefined : encodeException(id, exc);
      } finally {
        if (this._incoming.get(id) === controller) {
          this._incoming.delete(id);
        }
      }
    };
    // A cancelled call answers nothing, at once, even if its function ignores the signal.
    return Promise.race([run(), /** @type {Promise<undefined>} */ (aborted)]);
  }

  // Heartbeat

  /** @param {any} ws */
  _startHeartbeat(ws) {
    const { heartbeatInterval, heartbeatTimeout } = this.options;
    if (!hasTimer(heartbeatInterval) || this._ws !== ws) {
      return;
    }
    this._heartbeatTimer = this._setTimeout(() => {
      const id = ++this._lastId;
      this._pingId = id;
      this._send(`{"jsonrpc":"2.0","method":"$/ping","id":${id}}`);
      this._heartbeatTimer = this._setTimeout(
        () => this._lost(ws, CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout", false),
        Math.min(heartbeatTimeout, MAX_TIMER),
      );
    }, heartbeatInterval);
  }

  // Rooms (publish/subscribe): the methods; the layer is the class Rooms, below

  /**
   * Join `room` and call `callback(data, meta)` for each of its publications, in offset order,
   * each once; `meta` is `{room, epoch, offset}`, and `data` the JSON value published, or a
   * Uint8Array for bytes. The join goes out now if the connection is open, else when it opens
   * (before the queued calls); it is made again, with the last position, after a reconnection.
   * Subscriptions to the same room share one join.
   *
   * @param {string} room a non-empty string of at most 200 characters
   * @param {(data: any, meta: RoomPosition) => unknown} callback
   * @param {{onReset?: (position: RoomPosition) => unknown}} [options] `onReset(position)` is
   *   called when publications were lost (history too short, broker restarted, buffer full):
   *   delivery resumes after `position`
   * @returns {Subscription} `{room, ready, unsubscribe()}`
   * @throws {TypeError | ClientClosed}
   */
  subscribe(room, callback, options = {}) {
    this._rooms ??= new Rooms(this);
    return this._rooms.subscribe(room, callback, options);
  }

  /**
   * Publish `data` (a JSON value) to `room`, if the server lets clients publish.
   *
   * @param {string} room
   * @param {unknown} data
   * @returns {Promise<{epoch: string, offset: number}>} the publication's position; rejects as
   *   a call does (RemoteError -32601 when the server does not let clients publish), or with
   *   TypeError for an invalid room name or data that is not JSON (bytes included)
   */
  publish(room, data) {
    try {
      checkRoom(room);
      checkPublishable(data);
    } catch (exc) {
      return Promise.reject(exc);
    }
    return this.callWith("$/room/publish", { params: { room, data } });
  }

  // Helpers

  /** @param {"_connectTimer" | "_reconnectTimer" | "_heartbeatTimer"} name */
  _clearTimer(name) {
    if (this[name] !== null) {
      this._clearTimeout(this[name]);
      this[name] = null;
    }
  }

  /** @param {unknown} error */
  _emitError(error) {
    this.dispatchEvent(new RPCErrorEvent(error));
  }

  /**
   * Run `fn(...args)`; report what it throws or rejects with as an `error` event.
   *
   * @param {Function} fn
   * @param {...unknown} args
   */
  _guard(fn, ...args) {
    try {
      const result = fn(...args);
      if (result !== null && typeof result === "object" && typeof result.then === "function") {
        result.then(undefined, (/** @type {unknown} */ exc) => this._emitError(exc));
      }
    } catch (exc) {
      this._emitError(exc);
    }
  }
}

// Rooms (publish/subscribe): docs/pubsub.md, "Wire format for RPC peers"

/** The longest room name, in characters (code points), as on the server. */
const MAX_ROOM_NAME = 200;

/**
 * The most publications held per room while they wait for a join's answer, out of order: beyond
 * that they are dropped and the join ends in a reset.
 */
const MAX_HELD = 1000;

/**
 * @typedef {{epoch: string, offset: number}} Position
 * @typedef {{readonly room: string, readonly epoch: string, readonly offset: number}} RoomPosition
 * @typedef {{room: string, epoch: string, offset: number, data?: unknown, encoding?: unknown}}
 *   Publication the params of a `$/room/message` notification
 *
 * @typedef {object} Subscription what subscribe() returns
 * @property {string} room
 * @property {Promise<RoomPosition>} ready resolves when the room is joined
 * @property {() => void} unsubscribe
 *
 * @typedef {object} Subscriber
 * @property {(data: any, meta: RoomPosition) => unknown} callback
 * @property {((position: RoomPosition) => unknown) | undefined} onReset
 * @property {((position: RoomPosition) => void) | null} resolve its `ready`'s; null once settled
 * @property {(reason: unknown) => void} reject
 */

/** What the client knows of one room it subscribed to. */
class Room {
  /** @param {string} name */
  constructor(name) {
    this.name = name;
    /** @type {Set<Subscriber>} */
    this.subscribers = new Set();
    /** @type {Position | null} the last publication delivered, or where the first join began */
    this.position = null;
    /** @type {object | null} the join in flight: an answer to any other is ignored */
    this.join = null;
    /** Whether a join succeeded on the current connection. */
    this.joined = false;
    /** @type {Map<string, Publication>} publications ahead of `position`, by positionKey() */
    this.held = new Map();
    /** @type {Position | null} once `held` overflowed: the newest position dropped */
    this.overflow = null;
  }
}

/**
 * The pub/sub layer of one client, made by its first subscribe(): the rooms it subscribed to,
 * their joins, and the order of their publications (see the theory of operation).
 */
class Rooms {
  /** @param {RPC} rpc */
  constructor(rpc) {
    this._rpc = rpc;
    /** @type {Map<string, Room>} the rooms with at least one subscriber */
    this._rooms = new Map();
    rpc._on("$/room/message", (params) => this._receive(params));
    rpc._onOpen(() => this._opened());
    rpc._onClose(() => this._closed());
  }

  /**
   * @param {string} name
   * @param {(data: any, meta: RoomPosition) => unknown} callback
   * @param {{onReset?: (position: RoomPosition) => unknown}} options
   * @returns {Subscription}
   */
  subscribe(name, callback, { onReset } = {}) {
    checkRoom(name);
    if (typeof callback !== "function") {
      throw new TypeError(`subscribe to ${name}: a callback is needed, got ${typeof callback}`);
    }
    if (onReset !== undefined && typeof onReset !== "function") {
      throw new TypeError(
        `subscribe to ${name}: onReset must be a function, got ${typeof onReset}`,
      );
    }
    if (this._rpc.state === "closed") {
      throw new ClientClosed(`cannot subscribe to ${name}: client is closed`);
    }
    let room = this._rooms.get(name);
    if (room === undefined) {
      room = new Room(name);
      this._rooms.set(name, room);
      if (this._rpc.state === "open") {
        this._join(room);
      }
    }
    /** @type {any} */
    const subscriber = { callback, onReset };
    const ready = handled(
      new Promise((resolve, reject) => Object.assign(subscriber, { resolve, reject })),
    );
    room.subscribers.add(subscriber);
    if (room.joined) {
      this._resolveReady(room);
    }
    const joined = room;
    return Object.freeze({
      room: name,
      ready,
      unsubscribe: () => this._unsubscribe(joined, subscriber),
    });
  }

  /**
   * @param {Room} room
   * @param {Subscriber} subscriber
   */
  _unsubscribe(room, subscriber) {
    if (!room.subscribers.delete(subscriber)) {
      return; // twice, or after close()
    }
    this._rejectReady(subscriber, new DOMException(`unsubscribed from ${room.name}`, "AbortError"));
    if (room.subscribers.size > 0) {
      return;
    }
    this._rooms.delete(room.name);
    room.join = null; // its answer, if any, is ignored
    room.held.clear();
    if (this._rpc.state !== "open") {
      return; // the server forgot the membership with the connection
    }
    this._rpc.callWith("$/room/leave", { params: { room: room.name } }).catch((exc) => {
      if (!(exc instanceof ConnectionLost || exc instanceof ClientClosed)) {
        this._error(`cannot leave room ${room.name}`, exc);
      }
    });
  }

  // Joins

  /** A connection opened: join every room, before the queued calls go out. */
  _opened() {
    for (const room of this._rooms.values()) {
      if (room.join === null) {
        this._join(room); // not subscribe()'s own join, made by another open hook
      }
    }
  }

  /** The connection was lost or closed: joins and held publications go with it. */
  _closed() {
    for (const room of this._rooms.values()) {
      room.join = null; // its ConnectionLost is ignored: the next connection joins again
      room.joined = false;
      room.held.clear(); // the next join recovers them
      room.overflow = null;
    }
    if (this._rpc.state === "closed") {
      const error = new ClientClosed("client is closed");
      for (const room of this._rooms.values()) {
        for (const subscriber of room.subscribers) {
          this._rejectReady(subscriber, error);
        }
        room.subscribers.clear();
      }
      this._rooms.clear();
    }
  }

  /**
   * Send `$/room/join`, with `since` once a position is known.
   *
   * @param {Room} room
   */
  _join(room) {
    const join = {};
    room.join = join;
    const { position } = room;
    /** @type {Record<string, unknown>} */
    const params = { room: room.name };
    if (position !== null) {
      params.since = { epoch: position.epoch, offset: position.offset };
    }
    this._rpc.callWith("$/room/join", { params }).then(
      (answer) => this._joinAnswered(room, join, answer),
      (exc) => this._joinFailed(room, join, exc),
    );
  }

  /**
   * @param {Room} room
   * @param {object} join
   * @param {unknown} answer
   */
  _joinAnswered(room, join, answer) {
    if (room.join !== join) {
      return;
    }
    if (!isJoinAnswer(answer)) {
      const detail = JSON.stringify(answer)?.slice(0, 100);
      this._joinFailed(room, join, new RPCError(`invalid answer to $/room/join: ${detail}`));
      return;
    }
    room.join = null;
    room.joined = true;
    const at = { epoch: answer.epoch, offset: answer.offset };
    const { position, overflow } = room;
    room.overflow = null;
    const lost =
      overflow !== null ||
      (position !== null &&
        (position.epoch !== at.epoch || (!answer.recovered && position.offset < at.offset)));
    if (position === null || lost) {
      // A first join starts after the room's position; a loss resumes after the newest known.
      room.position = highest(at, [position, overflow]);
    }
    this._resolveReady(room);
    if (lost) {
      this._reset(room);
    }
    this._deliverHeld(room);
    const current = /** @type {Position} */ (room.position);
    if (this._isCurrent(room) && current.epoch === at.epoch && current.offset < at.offset) {
      // The server sent everything up to `at` before answering, yet some did not come.
      room.position = at;
      this._reset(room);
      this._deliverHeld(room);
    }
    if (this._isCurrent(room)) {
      this._recoverHeld(room);
    }
  }

  /**
   * A join failed: reported, and made again on the next connection (at the latest).
   *
   * @param {Room} room
   * @param {object} join
   * @param {unknown} exc
   */
  _joinFailed(room, join, exc) {
    if (room.join !== join) {
      return; // lost with the connection (joined again on the next one), or the room was left
    }
    room.join = null;
    room.held.clear();
    room.overflow = null;
    this._error(`cannot join room ${room.name}`, exc);
    for (const subscriber of room.subscribers) {
      this._rejectReady(subscriber, exc);
    }
  }

  // Publications

  /** @param {unknown} params a `$/room/message` notification's */
  _receive(params) {
    if (!isPublication(params)) {
      const detail = JSON.stringify(params)?.slice(0, 100);
      this._rpc._emitError(new RPCError(`invalid $/room/message from the server: ${detail}`));
      return;
    }
    const room = this._rooms.get(params.room);
    if (room === undefined || (room.join === null && !room.joined)) {
      return; // not subscribed (any more), or not joined: the next join recovers it
    }
    const { position } = room;
    if (position !== null && params.epoch === position.epoch) {
      if (params.offset <= position.offset) {
        return; // a duplicate
      }
      if (params.offset === position.offset + 1) {
        this._deliver(room, params);
        this._deliverHeld(room);
        return;
      }
    }
    // Out of order: held until a join answers. On a joined room, it is a gap: join again.
    this._hold(room, params);
    if (room.join === null) {
      this._join(room);
    }
  }

  /**
   * @param {Room} room
   * @param {Publication} publication
   */
  _hold(room, publication) {
    const key = positionKey(publication);
    if (room.overflow === null && (room.held.size < MAX_HELD || room.held.has(key))) {
      room.held.set(key, publication);
      return;
    }
    // Too many: drop them all, keeping the newest position, which the join's answer adopts.
    let newest = room.overflow;
    for (const held of room.held.values()) {
      newest = newer(newest, held);
    }
    room.overflow = newer(newest, publication);
    room.held.clear();
  }

  /**
   * Deliver the held publications that follow the position, in order.
   *
   * @param {Room} room
   */
  _deliverHeld(room) {
    while (this._isCurrent(room)) {
      const { epoch, offset } = /** @type {Position} */ (room.position);
      const key = positionKey({ epoch, offset: offset + 1 });
      const next = room.held.get(key);
      if (next === undefined) {
        return;
      }
      room.held.delete(key);
      this._deliver(room, next);
    }
  }

  /**
   * After a join's answer: drop the held publications that are stale; if some remain, they
   * follow a gap: join again to recover it.
   *
   * @param {Room} room
   */
  _recoverHeld(room) {
    const { epoch, offset } = /** @type {Position} */ (room.position);
    for (const [key, held] of room.held) {
      if (held.epoch !== epoch || held.offset <= offset) {
        room.held.delete(key);
      }
    }
    if (room.held.size > 0) {
      this._join(room);
    }
  }

  /**
   * Call the subscribers with one publication; the position moves past it.
   *
   * @param {Room} room
   * @param {Publication} publication
   */
  _deliver(room, publication) {
    room.position = { epoch: publication.epoch, offset: publication.offset };
    let data;
    try {
      data = decodeData(publication);
    } catch (exc) {
      this._rpc._emitError(exc);
      return;
    }
    const meta = this._meta(room);
    for (const subscriber of [...room.subscribers]) {
      if (room.subscribers.has(subscriber)) {
        this._rpc._guard(subscriber.callback, data, meta);
      }
    }
  }

  /**
   * Tell the subscribers that publications were lost, up to the position.
   *
   * @param {Room} room
   */
  _reset(room) {
    const meta = this._meta(room);
    for (const subscriber of [...room.subscribers]) {
      if (subscriber.onReset !== undefined && room.subscribers.has(subscriber)) {
        this._rpc._guard(subscriber.onReset, meta);
      }
    }
  }

  // Helpers

  /**
   * Whether `room` is still subscribed to (a callback may unsubscribe, or close the client).
   *
   * @param {Room} room
   */
  _isCurrent(room) {
    return this._rooms.get(room.name) === room;
  }

  /**
   * @param {Room} room
   * @returns {RoomPosition}
   */
  _meta(room) {
    const { epoch, offset } = /** @type {Position} */ (room.position);
    return Object.freeze({ room: room.name, epoch, offset });
  }

  /** @param {Room} room */
  _resolveReady(room) {
    const meta = this._meta(room);
    for (const subscriber of room.subscribers) {
      subscriber.resolve?.(meta);
      subscriber.resolve = null;
    }
  }

  /**
   * @param {Subscriber} subscriber
   * @param {unknown} reason
   */
  _rejectReady(subscriber, reason) {
    if (subscriber.resolve !== null) {
      subscriber.resolve = null;
      subscriber.reject(reason);
    }
  }

  /**
   * @param {string} what
   * @param {unknown} exc
   */
  _error(what, exc) {
    this._rpc._emitError(new RPCError(`${what}: ${errorMessage(exc)}`, { cause: exc }));
  }
}

/**
 * @param {unknown} room
 * @throws {TypeError} unless a non-empty string of at most 200 characters, as the server wants
 */
function checkRoom(room) {
  if (typeof room !== "string") {
    throw new TypeError(`a room name must be a string, got ${typeof room}`);
  }
  // Characters as the server counts them: code points, not UTF-16 units.
  const tooLong = room.length > MAX_ROOM_NAME && [...room].length > MAX_ROOM_NAME;
  if (room.length === 0 || tooLong || LONE_SURROGATE.test(room)) {
    const shown = room.length > 40 ? `${room.slice(0, 40)}…` : room;
    throw new TypeError(
      `invalid room name ${JSON.stringify(shown)}: ` +
        `a non-empty string of at most ${MAX_ROOM_NAME} characters is needed`,
    );
  }
}

/**
 * @param {unknown} data
 * @throws {TypeError} for what JSON cannot carry in a publication: bytes, undefined, functions
 */
function checkPublishable(data) {
  if (
    data instanceof ArrayBuffer ||
    ArrayBuffer.isView(data) ||
    (typeof Blob === "function" && data instanceof Blob)
  ) {
    throw new TypeError(
      "cannot publish binary data: a client publishes JSON values, which have no bytes " +
        "(encode them, e.g. as base64 text; bytes only come from the server)",
    );
  }
  if (data === undefined || typeof data === "function" || typeof data === "symbol") {
    throw new TypeError(`cannot publish ${String(typeof data)}: data must be a JSON value`);
  }
}

/**
 * @param {unknown} params
 * @returns {params is Publication}
 */
function isPublication(params) {
  return (
    isObject(params) &&
    typeof params.room === "string" &&
    typeof params.epoch === "string" &&
    Number.isSafeInteger(params.offset) &&
    /** @type {number} */ (params.offset) >= 1
  );
}

/**
 * @param {unknown} answer
 * @returns {answer is {epoch: string, offset: number, recovered: boolean}}
 */
function isJoinAnswer(answer) {
  return (
    isObject(answer) &&
    typeof answer.epoch === "string" &&
    Number.isSafeInteger(answer.offset) &&
    /** @type {number} */ (answer.offset) >= 0 &&
    typeof answer.recovered === "boolean"
  );
}

/**
 * A publication's data: its JSON value, or bytes sent as base64 text.
 *
 * @param {Publication} publication
 * @returns {unknown}
 */
function decodeData({ room, offset, data, encoding }) {
  if (encoding === undefined) {
    return data;
  }
  const what = `publication ${offset} of room ${room}`;
  if (encoding !== "base64" || typeof data !== "string") {
    throw new RPCError(`${what}: unknown encoding ${JSON.stringify(encoding)}`);
  }
  let binary;
  try {
    binary = atob(data);
  } catch (exc) {
    throw new RPCError(`${what}: invalid base64: ${errorMessage(exc)}`, { cause: exc });
  }
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) {
    bytes[index] = binary.charCodeAt(index);
  }
  return bytes;
}

/**
 * A key for a position: the offset first, so that no epoch can make two positions collide.
 *
 * @param {Position} position
 */
function positionKey({ epoch, offset }) {
  return `${offset} ${epoch}`;
}

/**
 * The later of two positions: `b` if it is in another epoch (it came later), else the higher.
 *
 * @param {Position | null} a
 * @param {Position} b
 * @returns {Position}
 */
function newer(a, b) {
  if (a === null || a.epoch !== b.epoch || b.offset > a.offset) {
    return { epoch: b.epoch, offset: b.offset };
  }
  return a;
}

/**
 * The highest position in the epoch of `at`, among `at` and `others`.
 *
 * @param {Position} at
 * @param {(Position | null)[]} others
 * @returns {Position}
 */
function highest(at, others) {
  let result = at;
  for (const other of others) {
    if (other !== null && other.epoch === at.epoch && other.offset > result.offset) {
      result = { epoch: other.epoch, offset: other.offset };
    }
  }
  return result;
}

// Module helpers

/**
 * @param {string | URL} url
 * @returns {string}
 */
function resolveURL(url) {
  const base = globalThis.location?.href;
  let resolved;
  try {
    resolved = new URL(url, base);
  } catch (exc) {
    const hint = base === undefined ? " (a relative URL needs a page)" : "";
    throw new TypeError(`invalid URL ${String(url)}${hint}`, { cause: exc });
  }
  if (resolved.protocol === "http:" || resolved.protocol === "https:") {
    resolved.protocol = resolved.protocol === "https:" ? "wss:" : "ws:";
  }
  if (resolved.protocol !== "ws:" && resolved.protocol !== "wss:") {
    throw new TypeError(`URL must be ws://, wss://, http:// or https://, got ${resolved.href}`);
  }
  if (resolved.hash !== "") {
    throw new TypeError(`WebSocket URLs have no fragment: ${resolved.href}`);
  }
  return resolved.href;
}

/**
 * @param {Record<string, any>} options
 * @returns {typeof DEFAULTS}
 */
function readOptions(options) {
  /** @type {Record<string, any>} */
  const values = { ...DEFAULTS };
  for (const name of Object.keys(DEFAULTS)) {
    if (options[name] !== undefined) {
      values[name] = options[name];
    }
  }
  for (const name of ["timeout", "initialDelay", "maxDelay", "connectTimeout"]) {
    checkDuration(name, values[name]);
  }
  checkDuration("heartbeatInterval", values.heartbeatInterval);
  checkDuration("heartbeatTimeout", values.heartbeatTimeout, true);
  if (!Number.isInteger(values.maxQueued) || values.maxQueued < 0) {
    throw new RangeError(`maxQueued must be an integer >= 0, got ${values.maxQueued}`);
  }
  if (typeof values.backoffFactor !== "number" || !(values.backoffFactor >= 1)) {
    throw new RangeError(`backoffFactor must be a number >= 1, got ${values.backoffFactor}`);
  }
  if (typeof values.jitter !== "number" || !(values.jitter >= 0 && values.jitter <= 1)) {
    throw new RangeError(`jitter must be a number from 0 to 1, got ${values.jitter}`);
  }
  if (values.maxDelay < values.initialDelay) {
    throw new RangeError(
      `maxDelay (${values.maxDelay}) is less than initialDelay (${values.initialDelay})`,
    );
  }
  values.reconnect = Boolean(values.reconnect);
  return /** @type {typeof DEFAULTS} */ (values);
}

/**
 * @param {string} name
 * @param {unknown} value
 * @param {boolean} [positive]
 */
function checkDuration(name, value, positive = false) {
  if (typeof value !== "number" || !(positive ? value > 0 : value >= 0)) {
    const what = positive ? "> 0" : ">= 0";
    throw new RangeError(`${name} must be a number of milliseconds ${what}, got ${String(value)}`);
  }
}

/**
 * Whether a duration option arms a timer: 0 and Infinity mean none, and so does anything too
 * long for setTimeout (about 24.8 days).
 *
 * @param {number} ms
 */
function hasTimer(ms) {
  return ms > 0 && ms <= MAX_TIMER;
}

/** @param {string} name */
function checkMethodName(name) {
  if (typeof name !== "string" || name.length > MAX_METHOD_NAME || !METHOD_NAME.test(name)) {
    throw new TypeError(
      `invalid method name ${JSON.stringify(name)}: identifiers joined by dots, ` +
        `each [A-Za-z][A-Za-z0-9_]*, at most ${MAX_METHOD_NAME} characters`,
    );
  }
  if (name.startsWith("rpc.")) {
    throw new TypeError(`invalid method name ${name}: "rpc." names are reserved`);
  }
}

/**
 * The arguments a function gets for `params`: spread from an array, or one object.
 *
 * @param {Params | undefined} params
 * @returns {unknown[]}
 */
function spread(params) {
  if (params === undefined) {
    return [];
  }
  return Array.isArray(params) ? params : [params];
}

/**
 * Mark `promise` as handled (its rejection is not reported as unhandled); return it.
 *
 * @template T
 * @param {Promise<T>} promise
 * @returns {Promise<T>}
 */
function handled(promise) {
  promise.catch(() => {});
  return promise;
}

// Names JavaScript itself looks up on any object: they never build remote calls.
const IMPLICIT = new Set(["then", "toJSON", "toString", "valueOf"]);

/**
 * @param {RPC} rpc
 * @param {string} path the dotted name so far
 * @returns {any}
 */
function remoteProxy(rpc, path) {
  return new Proxy(function remote() {}, {
    get(_target, property) {
      if (typeof property !== "string" || IMPLICIT.has(property) || !IDENTIFIER.test(property)) {
        return undefined;
      }
      return remoteProxy(rpc, path === "" ? property : `${path}.${property}`);
    },
    apply(_target, _this, args) {
      if (path === "") {
        throw new TypeError("rpc.proxy is not a method: call rpc.proxy.name(...)");
      }
      return rpc.call(path, ...args);
    },
  });
}
