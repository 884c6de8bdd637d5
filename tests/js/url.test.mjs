// URLs (absolute, http(s), relative to the page), the subprotocol, and the options.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { DEFAULTS, RPC, SUBPROTOCOL } from "../../src/socketeer/static/socketeer.js";
import { fakeWebSocketClass, setup } from "./fakes.mjs";

function urlOf(url) {
  return new RPC(url, { WebSocket: fakeWebSocketClass([]) }).url;
}

afterEach(() => {
  delete globalThis.location;
});

test("ws:// and wss:// URLs are kept; http:// and https:// become ws:// and wss://", () => {
  assert.equal(urlOf("ws://example.test:8765/rpc"), "ws://example.test:8765/rpc");
  assert.equal(urlOf("wss://example.test/rpc?token=1"), "wss://example.test/rpc?token=1");
  assert.equal(urlOf("http://example.test/rpc"), "ws://example.test/rpc");
  assert.equal(urlOf("https://example.test:8443/rpc"), "wss://example.test:8443/rpc");
  assert.equal(urlOf(new URL("ws://example.test/x")), "ws://example.test/x");
});

test("a relative URL is resolved against the page, with wss:// for an https:// page", () => {
  globalThis.location = { href: "https://app.example.test/app/page.html?x=1" };
  assert.equal(urlOf("/rpc"), "wss://app.example.test/rpc");
  assert.equal(urlOf("rpc"), "wss://app.example.test/app/rpc");
  assert.equal(urlOf("//other.test/rpc"), "wss://other.test/rpc");
  globalThis.location = { href: "http://localhost:8000/" };
  assert.equal(urlOf("/rpc"), "ws://localhost:8000/rpc");
  assert.equal(urlOf("ws://elsewhere.test/rpc"), "ws://elsewhere.test/rpc");
});

test("a relative URL without a page, other schemes, and fragments are refused", () => {
  assert.throws(() => urlOf("/rpc"), /invalid URL \/rpc \(a relative URL needs a page\)/);
  assert.throws(() => urlOf("ftp://example.test/"), /URL must be ws:\/\/, wss:\/\//);
  assert.throws(() => urlOf("ws://example.test/#x"), /no fragment/);
});

test("the client offers the socketeer.rpc.v1 subprotocol on the resolved URL", () => {
  const { rpc, socket } = setup();
  rpc.connect();
  assert.equal(SUBPROTOCOL, "socketeer.rpc.v1");
  assert.equal(socket().url, "ws://example.test/rpc");
  assert.deepEqual([socket().protocols].flat(), ["socketeer.rpc.v1"]);
  assert.equal(socket().binaryType, "arraybuffer");
});

test("without a WebSocket class, the constructor says to pass one", () => {
  const saved = globalThis.WebSocket; // Node 22 and later have one
  globalThis.WebSocket = undefined;
  try {
    assert.throws(
      () => new RPC("ws://example.test/"),
      /no WebSocket class here: pass one as options.WebSocket/,
    );
  } finally {
    globalThis.WebSocket = saved;
  }
});

test("the WebSocket class defaults to globalThis.WebSocket", () => {
  const saved = globalThis.WebSocket;
  const sockets = [];
  globalThis.WebSocket = fakeWebSocketClass(sockets);
  try {
    const rpc = new RPC("ws://example.test/");
    rpc.connect();
    rpc.close(); // its timers are real ones
    assert.equal(sockets.length, 1);
  } finally {
    globalThis.WebSocket = saved;
  }
});

test("the options are checked, and the defaults are the documented ones", () => {
  const WebSocket = fakeWebSocketClass([]);
  const make = (options) => new RPC("ws://example.test/", { WebSocket, ...options });
  assert.deepEqual({ ...make({}).options }, { ...DEFAULTS });
  assert.deepEqual(DEFAULTS, {
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
  assert.equal(make({ timeout: 5 }).options.timeout, 5);
  for (const bad of [
    { timeout: -1 },
    { timeout: "1" },
    { timeout: NaN },
    { maxQueued: 1.5 },
    { maxQueued: -1 },
    { backoffFactor: 0.5 },
    { jitter: 2 },
    { initialDelay: 10, maxDelay: 5 },
    { heartbeatTimeout: 0 },
    { connectTimeout: -5 },
  ]) {
    assert.throws(() => make(bad), RangeError, JSON.stringify(bad));
  }
});
