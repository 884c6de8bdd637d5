// Calls and notifications made while not connected: queued in order, bounded, flushed on open.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ClientClosed, QueueFull } from "../../src/socketeer/static/socketeer.js";
import { notification, request, result, settle, setup } from "./fakes.mjs";

test("calls before connect() are queued, then sent in order when the socket opens", async () => {
  const { rpc, sockets, socket } = setup();
  const sum = rpc.call("add", 1, 2);
  rpc.notify("log", "hello");
  const named = rpc.callWith("greet", { params: { name: "Ada" } });
  assert.equal(rpc.state, "idle");
  assert.equal(rpc.queued, 3);
  assert.equal(sockets.length, 0);

  rpc.connect();
  assert.equal(rpc.state, "connecting");
  assert.deepEqual(socket().sent, []);
  socket().open();
  assert.equal(rpc.state, "open");
  assert.deepEqual(socket().take(), [
    request("add", [1, 2], 1),
    notification("log", ["hello"]),
    request("greet", { name: "Ada" }, 2),
  ]);
  assert.equal(rpc.queued, 0);
  assert.equal(rpc.inFlight, 2);

  socket().receive(result(2, "hello Ada"));
  socket().receive(result(1, 3));
  assert.equal(await sum, 3);
  assert.equal(await named, "hello Ada");
  assert.equal(rpc.inFlight, 0);
});

test("calls while connecting are queued; calls while open are sent at once", async () => {
  const { rpc, socket } = setup();
  rpc.connect();
  const first = rpc.call("first");
  assert.deepEqual(socket().sent, []);
  socket().open();
  const second = rpc.call("second");
  assert.deepEqual(socket().take(), [
    request("first", undefined, 1),
    request("second", undefined, 2),
  ]);
  socket().receive(result(1, "a"));
  socket().receive(result(2, "b"));
  assert.deepEqual(await Promise.all([first, second]), ["a", "b"]);
});

test("maxQueued bounds the queue: beyond it, calls reject and notify throws at once", async () => {
  const { rpc, socket } = setup({ maxQueued: 2 });
  const kept = [rpc.call("one"), rpc.call("two")];
  await assert.rejects(rpc.call("three"), (exc) => {
    assert.ok(exc instanceof QueueFull);
    assert.equal(exc.name, "QueueFull");
    assert.equal(exc.method, "three");
    assert.equal(exc.limit, 2);
    assert.match(exc.message, /cannot queue three: 2 messages already wait/);
    return true;
  });
  assert.throws(() => rpc.notify("four"), QueueFull);
  assert.equal(rpc.queued, 2);

  rpc.connect();
  socket().open();
  assert.deepEqual(
    socket()
      .take()
      .map((message) => message.method),
    ["one", "two"],
  );
  // Once open, the bound does not apply: nothing waits.
  const more = [rpc.call("five"), rpc.call("six"), rpc.call("seven")];
  assert.equal(socket().take().length, 3);
  for (const id of [1, 2, 3, 4, 5]) {
    socket().receive(result(id, id));
  }
  assert.deepEqual(await Promise.all([...kept, ...more]), [1, 2, 3, 4, 5]);
});

test("maxQueued: 0 refuses every call made while not connected", async () => {
  const { rpc } = setup({ maxQueued: 0 });
  await assert.rejects(rpc.call("x"), QueueFull);
});

test("connect() resolves on open, is idempotent, and rejects after close()", async () => {
  const { rpc, sockets, socket } = setup();
  const first = rpc.connect();
  const second = rpc.connect();
  assert.equal(first, second);
  assert.equal(sockets.length, 1);
  let opened = false;
  first.then(() => {
    opened = true;
  });
  await settle();
  assert.equal(opened, false);
  socket().open();
  await first;
  await rpc.connect(); // already open
  rpc.close();
  await assert.rejects(rpc.connect(), ClientClosed);
});

test("close() before the socket opens rejects connect() and the queued calls", async () => {
  const { rpc, socket } = setup();
  const call = rpc.call("never");
  rpc.notify("dropped");
  const connected = rpc.connect();
  rpc.close();
  await assert.rejects(connected, ClientClosed);
  await assert.rejects(
    call,
    (exc) => exc instanceof ClientClosed && /client is closed/.test(exc.message),
  );
  assert.equal(rpc.queued, 0);
  assert.deepEqual(socket().closeCalls, [{ code: 1000, reason: "" }]);
  assert.deepEqual(socket().sent, []);
});

test("calls and notifications after close() are refused", async () => {
  const { rpc } = setup();
  rpc.close();
  assert.equal(rpc.state, "closed");
  await assert.rejects(rpc.call("late"), ClientClosed);
  assert.throws(() => rpc.notify("late"), ClientClosed);
});

test("close() without connect() closes the client", async () => {
  const { rpc, sockets, clock } = setup();
  const call = rpc.call("x");
  rpc.close();
  await assert.rejects(call, ClientClosed);
  rpc.connect();
  clock.advance(1e9);
  assert.equal(sockets.length, 0);
});

test("params that are not JSON reject the call, or throw from notify, at once", async () => {
  const { rpc } = setup();
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(rpc.call("x", cyclic), TypeError);
  await assert.rejects(rpc.call("x", 1n), TypeError);
  await assert.rejects(rpc.callWith("x", { params: 5 }), TypeError);
  await assert.rejects(rpc.call(42), TypeError);
  // JSON cannot carry these: refused rather than changed (JSON.stringify() writes NaN as null).
  await assert.rejects(rpc.call("x", NaN), /NaN is not a JSON number/);
  await assert.rejects(rpc.call("x", { a: [-Infinity] }), /-Infinity is not a JSON number/);
  await assert.rejects(rpc.call("x", "\ud800"), /lone UTF-16 surrogate/);
  await assert.rejects(rpc.callWith("x", { params: { "\udc00": 1 } }), /lone UTF-16 surrogate/);
  await assert.rejects(rpc.call("\ud800"), /lone UTF-16 surrogate/);
  assert.throws(() => rpc.notify("x", 1n), TypeError);
  assert.equal(rpc.queued, 0);
});

test("messages are compact JSON; a call without arguments sends no params", async () => {
  const { rpc, socket, open } = setup();
  await open();
  rpc.call("pair", "😀", "é");
  rpc.call("now");
  rpc.notify("ping");
  rpc.callWith("named", { params: {} });
  assert.deepEqual(socket().sent, [
    '{"jsonrpc":"2.0","method":"pair","params":["😀","é"],"id":1}',
    '{"jsonrpc":"2.0","method":"now","id":2}',
    '{"jsonrpc":"2.0","method":"ping"}',
    '{"jsonrpc":"2.0","method":"named","params":{},"id":3}',
  ]);
});
