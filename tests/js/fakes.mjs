// Fakes for the tests of socketeer.js: a WebSocket whose server side a test scripts, and a clock
// that only moves when a test advances it. Nothing waits on real time: after an action, a test
// awaits settle() (every pending promise callback runs), then checks what was sent.

import { RPC } from "../../src/socketeer/static/socketeer.js";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** A clock for setTimeout/clearTimeout: timers fire only in advance(), in order of due time. */
export class FakeClock {
  now = 0;
  #timers = new Map();
  #lastId = 0;

  setTimeout = (handler, ms) => {
    const id = ++this.#lastId;
    this.#timers.set(id, { at: this.now + ms, handler });
    return id;
  };

  clearTimeout = (id) => {
    this.#timers.delete(id);
  };

  /** Move the clock `ms` forward, running the timers that come due, in order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) {
          next = [id, timer];
        }
      }
      if (next === null) {
        break;
      }
      this.#timers.delete(next[0]);
      this.now = next[1].at;
      next[1].handler();
    }
    this.now = end;
  }

  /** The delays of the armed timers, from now, sorted. */
  get pending() {
    return [...this.#timers.values()].map((timer) => timer.at - this.now).sort((a, b) => a - b);
  }
}

/** A WebSocket class whose instances go to `sockets`, and whose server side tests drive. */
export function fakeWebSocketClass(sockets) {
  return class FakeWebSocket extends EventTarget {
    static CONNECTING = CONNECTING;
    static OPEN = OPEN;
    static CLOSING = CLOSING;
    static CLOSED = CLOSED;

    constructor(url, protocols) {
      super();
      this.url = url;
      this.protocols = protocols;
      this.protocol = "";
      this.readyState = CONNECTING;
      this.binaryType = "blob";
      /** Text messages the client sent. */
      this.sent = [];
      /** Arguments of the client's close() calls. */
      this.closeCalls = [];
      sockets.push(this);
    }

    send(data) {
      if (this.readyState === CONNECTING) {
        throw new DOMException("still in CONNECTING state", "InvalidStateError");
      }
      if (this.readyState === OPEN) {
        this.sent.push(data);
      }
    }

    close(code, reason) {
      if (this.readyState === CLOSED) {
        return;
      }
      this.closeCalls.push({ code, reason });
      this.readyState = CLOSING; // The server's close comes when a test says so, or never.
    }

    // The server side.

    /** Accept the connection, selecting `protocol`. */
    open(protocol = "socketeer.rpc.v1") {
      this.readyState = OPEN;
      this.protocol = protocol;
      this.dispatchEvent(new Event("open"));
    }

    /** Send a message to the client: a string as is, anything else as JSON. */
    receive(message) {
      const data =
        typeof message === "string" || message instanceof ArrayBuffer
          ? message
          : JSON.stringify(message);
      this.dispatchEvent(new MessageEvent("message", { data }));
    }

    /** Close the connection from the server side (or complete the client's close). */
    serverClose(code = 1000, reason = "", wasClean = true) {
      this.readyState = CLOSED;
      this.dispatchEvent(Object.assign(new Event("close"), { code, reason, wasClean }));
    }

    /** Fail the connection, as a browser does: an error event, then close 1006. */
    fail() {
      this.dispatchEvent(new Event("error"));
      this.serverClose(1006, "", false);
    }

    /** The messages sent so far, parsed, and forgotten. */
    take() {
      const messages = this.sent.map((text) => JSON.parse(text));
      this.sent = [];
      return messages;
    }
  };
}

/** Let every pending promise callback run. */
export function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A client on fakes: `rpc`, the `clock`, the `sockets` it opened (`socket()` is the latest) and
 * the `events` it dispatched (connect, disconnect, reconnecting, error), as plain objects.
 */
export function setup(options = {}) {
  const clock = new FakeClock();
  const sockets = [];
  const rpc = new RPC(options.url ?? "ws://example.test/rpc", {
    WebSocket: fakeWebSocketClass(sockets),
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0,
    heartbeatInterval: 0,
    ...options,
  });
  const events = [];
  for (const type of ["connect", "disconnect", "reconnecting", "error"]) {
    rpc.addEventListener(type, (event) => {
      events.push({ type, ...Object.fromEntries(Object.entries(event)) });
    });
  }
  const socket = () => sockets.at(-1);
  /** Connect and open a socket; the sent messages are taken. */
  const open = async () => {
    rpc.connect();
    socket().open();
    await settle();
  };
  return { rpc, clock, sockets, socket, events, open };
}

/** A JSON-RPC request. */
export function request(method, params, id) {
  const message = { jsonrpc: "2.0", method, id };
  if (params !== undefined) {
    message.params = params;
  }
  return message;
}

/** A JSON-RPC notification. */
export function notification(method, params) {
  const message = { jsonrpc: "2.0", method };
  if (params !== undefined) {
    message.params = params;
  }
  return message;
}

/** A JSON-RPC result response. */
export function result(id, value) {
  return { jsonrpc: "2.0", result: value, id };
}

/** A JSON-RPC error response. */
export function error(id, code, message, data) {
  const error = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: "2.0", error, id };
}
