// Reconnection with exponential backoff and jitter, events, and close() stopping it for good.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ClientClosed,
  ConnectionLost,
  backoffDelay,
} from "../../src/socketeer/static/socketeer.js";
import { request, result, settle, setup } from "./fakes.mjs";

const POLICY = { initialDelay: 100, maxDelay: 500, backoffFactor: 2, jitter: 0.5 };

function reconnecting(events) {
  return events.filter((event) => event.type === "reconnecting");
}

test("failed attempts are retried with exponential backoff, capped at maxDelay", () => {
  const { rpc, clock, sockets, socket, events } = setup({ ...POLICY, random: () => 0 });
  rpc.connect();
  const delays = [];
  for (let attempt = 1; attempt <= 5; attempt++) {
    socket().fail();
    const event = reconnecting(events).at(-1);
    assert.equal(event.attempt, attempt);
    delays.push(event.delay);
    assert.equal(rpc.state, "reconnecting");
    // No new socket before the delay is over, one right at it.
    const before = sockets.length;
    clock.advance(event.delay - 1);
    assert.equal(sockets.length, before);
    clock.advance(1);
    assert.equal(sockets.length, before + 1);
    assert.equal(rpc.state, "connecting");
  }
  assert.deepEqual(delays, [100, 200, 400, 500, 500]);
  // A failed attempt is an error, not a disconnect: the client never was connected.
  assert.equal(events.filter((event) => event.type === "disconnect").length, 0);
  assert.equal(events.filter((event) => event.type === "error").length, 5);
});

test("jitter lowers each delay by a random part of up to `jitter` of it", () => {
  const random = (value) => () => value;
  assert.equal(backoffDelay(1, POLICY, random(0)), 100);
  assert.equal(backoffDelay(1, POLICY, random(0.5)), 75);
  assert.equal(backoffDelay(3, POLICY, random(0.999999)), 200);
  assert.equal(backoffDelay(9, POLICY, random(0.5)), 375);
  assert.equal(backoffDelay(3, { ...POLICY, jitter: 0 }, random(0.9)), 400);

  const { rpc, socket, events } = setup({ ...POLICY, random: random(0.5) });
  rpc.connect();
  socket().fail();
  assert.equal(reconnecting(events)[0].delay, 75);
});

test("a loss emits disconnect then reconnecting; attempts restart from 1", async () => {
  const { rpc, clock, socket, events, open } = setup({ ...POLICY, random: () => 0 });
  rpc.connect();
  socket().fail();
  clock.advance(100);
  socket().fail();
  clock.advance(200);
  socket().open();
  assert.equal(rpc.state, "open");
  socket().serverClose(1012, "restarting");
  assert.equal(rpc.state, "reconnecting");
  const types = events.map((event) => event.type);
  assert.deepEqual(types, [
    "error",
    "reconnecting",
    "error",
    "reconnecting",
    "connect",
    "disconnect",
    "reconnecting",
  ]);
  assert.deepEqual(events[4], {
    type: "connect",
    url: "ws://example.test/rpc",
    protocol: "socketeer.rpc.v1",
  });
  assert.deepEqual(events[5], {
    type: "disconnect",
    code: 1012,
    reason: "restarting",
    wasClean: true,
    willReconnect: true,
  });
  assert.deepEqual(events[6], { type: "reconnecting", attempt: 1, delay: 100 });
  clock.advance(100);
  await open();
  assert.equal(rpc.state, "open");
});

test("queued calls survive reconnections; calls in flight reject: ConnectionLost", async () => {
  const { rpc, clock, sockets, socket, open } = setup({ ...POLICY, random: () => 0 });
  await open();
  const inFlight = rpc.call("charge", 10);
  assert.deepEqual(socket().take(), [request("charge", [10], 1)]);
  socket().serverClose(1001, "going away", true);
  await assert.rejects(inFlight, (exc) => {
    assert.ok(exc instanceof ConnectionLost);
    assert.equal(exc.method, "charge");
    assert.equal(exc.code, 1001);
    assert.equal(exc.reason, "going away");
    assert.match(exc.message, /may have run/);
    return true;
  });

  const queued = rpc.call("balance");
  clock.advance(100);
  assert.equal(sockets.length, 2);
  socket().fail();
  const alsoQueued = rpc.call("history");
  clock.advance(200);
  socket().open();
  // The lost call is not sent again: only the queued ones, in order.
  assert.deepEqual(socket().take(), [
    request("balance", undefined, 2),
    request("history", undefined, 3),
  ]);
  socket().receive(result(2, 90));
  socket().receive(result(3, []));
  assert.equal(await queued, 90);
  assert.deepEqual(await alsoQueued, []);
});

test("close() while waiting to reconnect stops for good", async () => {
  const { rpc, clock, sockets, socket, events } = setup({ ...POLICY });
  rpc.connect();
  socket().fail();
  assert.equal(rpc.state, "reconnecting");
  const queued = rpc.call("x");
  rpc.close();
  assert.equal(rpc.state, "closed");
  await assert.rejects(queued, ClientClosed);
  assert.deepEqual(clock.pending, []);
  clock.advance(1e9);
  assert.equal(sockets.length, 1);
  rpc.connect();
  assert.equal(sockets.length, 1);
  assert.equal(events.filter((event) => event.type === "disconnect").length, 0);
});

test("close() while connecting abandons the socket; its late events change nothing", async () => {
  const { rpc, clock, sockets, socket, events } = setup({ ...POLICY });
  rpc.connect();
  rpc.close(4001, "bye");
  assert.deepEqual(socket().closeCalls, [{ code: 4001, reason: "bye" }]);
  socket().open();
  socket().serverClose(1006, "", false);
  assert.equal(rpc.state, "closed");
  clock.advance(1e9);
  assert.equal(sockets.length, 1);
  assert.deepEqual(events, []);
});

test("close() while open closes the socket, emits disconnect, and never reconnects", async () => {
  const { rpc, clock, sockets, socket, events, open } = setup({ ...POLICY });
  await open();
  const inFlight = rpc.call("slow");
  rpc.close(1000, "done");
  assert.equal(rpc.state, "closed");
  assert.deepEqual(socket().closeCalls, [{ code: 1000, reason: "done" }]);
  await assert.rejects(inFlight, ConnectionLost);
  assert.deepEqual(events.at(-1), {
    type: "disconnect",
    code: 1000,
    reason: "done",
    wasClean: true,
    willReconnect: false,
  });
  socket().serverClose(1000, "done"); // the closing handshake completes
  rpc.close(); // again: nothing happens
  clock.advance(1e9);
  assert.equal(sockets.length, 1);
  assert.equal(events.filter((event) => event.type === "disconnect").length, 1);
  assert.equal(reconnecting(events).length, 0);
});

test("close() from a disconnect listener prevents the reconnection", () => {
  const { rpc, clock, sockets, socket, events } = setup({ ...POLICY });
  rpc.addEventListener("disconnect", () => rpc.close());
  rpc.connect();
  socket().open();
  socket().serverClose(1011, "oops");
  assert.equal(rpc.state, "closed");
  assert.equal(reconnecting(events).length, 0);
  clock.advance(1e9);
  assert.equal(sockets.length, 1);
});

test("close() refuses codes and reasons WebSocket.close() would refuse", () => {
  const { rpc } = setup();
  assert.throws(() => rpc.close(1001), RangeError);
  assert.throws(() => rpc.close(5000), RangeError);
  assert.throws(() => rpc.close(1000, "é".repeat(62)), RangeError);
  assert.equal(rpc.state, "idle");
});

test("with reconnect: false, a lost connection closes the client", async () => {
  const { rpc, clock, sockets, socket, events, open } = setup({ reconnect: false });
  await open();
  const inFlight = rpc.call("x");
  socket().serverClose(1001, "bye");
  assert.equal(rpc.state, "closed");
  await assert.rejects(inFlight, ConnectionLost);
  await assert.rejects(rpc.call("y"), ClientClosed);
  assert.deepEqual(events.at(-1), {
    type: "disconnect",
    code: 1001,
    reason: "bye",
    wasClean: true,
    willReconnect: false,
  });
  clock.advance(1e9);
  assert.equal(sockets.length, 1);
});

test("with reconnect: false, a failed connection rejects connect() and the queue", async () => {
  const { rpc, socket } = setup({ reconnect: false });
  const queued = rpc.call("x");
  const connected = rpc.connect();
  socket().fail();
  await assert.rejects(connected, /connection closed \(code 1006\) and reconnect is off/);
  await assert.rejects(queued, ClientClosed);
});

test("an opening handshake longer than connectTimeout is abandoned and retried", () => {
  const { rpc, clock, sockets, socket, events } = setup({
    ...POLICY,
    connectTimeout: 5000,
    random: () => 0,
  });
  rpc.connect();
  clock.advance(4999);
  assert.equal(rpc.state, "connecting");
  clock.advance(1);
  assert.equal(sockets[0].closeCalls.length, 1);
  assert.equal(rpc.state, "reconnecting");
  assert.match(events[0].message, /no connection to ws:\/\/example.test\/rpc within 5000 ms/);
  assert.deepEqual(events[1], { type: "reconnecting", attempt: 1, delay: 100 });
  sockets[0].open(); // too late: ignored
  assert.equal(rpc.state, "reconnecting");
  clock.advance(100);
  socket().open();
  assert.equal(rpc.state, "open");
  clock.advance(1e9); // the new connection's timer is disarmed
  assert.equal(rpc.state, "open");
});

test("a WebSocket constructor that throws closes the client", async () => {
  class Refusing {
    constructor() {
      throw new DOMException("port blocked", "SecurityError");
    }
  }
  const { rpc, events } = setup({ WebSocket: Refusing });
  const queued = rpc.call("x");
  await assert.rejects(rpc.connect(), /cannot open ws:\/\/example.test\/rpc: port blocked/);
  await assert.rejects(queued, ClientClosed);
  assert.equal(rpc.state, "closed");
  assert.equal(events[0].type, "error");
  assert.equal(events[0].error.name, "SecurityError");
});

test("open and close hooks run on every connection, open hooks before the queue", async () => {
  const { rpc, clock, socket, open } = setup({ ...POLICY, random: () => 0 });
  const log = [];
  const removeOpen = rpc._onOpen((client) => {
    assert.equal(client, rpc);
    log.push(`open ${rpc.inFlight}`);
    rpc.notify("rooms.join", "lobby");
  });
  rpc._onClose(() => log.push(`close ${rpc.inFlight}`));
  const queued = rpc.call("queued");
  await open();
  assert.deepEqual(
    socket()
      .take()
      .map((message) => message.method),
    ["rooms.join", "queued"],
  );
  socket().serverClose(1012);
  await assert.rejects(queued, ConnectionLost);
  clock.advance(100);
  socket().open();
  assert.deepEqual(socket().take(), [{ jsonrpc: "2.0", method: "rooms.join", params: ["lobby"] }]);
  removeOpen();
  rpc.close();
  assert.deepEqual(log, ["open 0", "close 0", "open 0", "close 0"]);
  await settle();
});

test("an open hook that throws is reported as an error event; the others still run", async () => {
  const { rpc, socket, events, open } = setup();
  rpc._onOpen(() => {
    throw new Error("hook failed");
  });
  let ran = false;
  rpc._onOpen(() => {
    ran = true;
  });
  await open();
  assert.equal(ran, true);
  assert.equal(rpc.state, "open");
  assert.equal(events[0].type, "error");
  assert.equal(events[0].message, "hook failed");
  assert.equal(socket().readyState, 1);
});

test("calls made by close hooks and disconnect listeners wait for the next connection", async () => {
  const { rpc, clock, socket, open } = setup({ ...POLICY, random: () => 0 });
  rpc._onClose(() => rpc.notify("from.hook"));
  rpc.addEventListener("disconnect", () => rpc.notify("from.listener"));
  await open();
  socket().serverClose(1012);
  assert.equal(rpc.queued, 2);
  clock.advance(100);
  socket().open();
  assert.deepEqual(
    socket()
      .take()
      .map((message) => message.method),
    ["from.hook", "from.listener"],
  );
});

test("an open hook that closes the client stops the opening: no queue, no connect event", async () => {
  const { rpc, socket, events } = setup();
  rpc._onOpen(() => rpc.close(4002, "not allowed"));
  const queued = rpc.call("x");
  const connected = rpc.connect();
  socket().open();
  await assert.rejects(connected, ClientClosed);
  await assert.rejects(queued, ClientClosed);
  assert.deepEqual(socket().sent, []);
  assert.deepEqual(socket().closeCalls, [{ code: 4002, reason: "not allowed" }]);
  assert.deepEqual(
    events.map((event) => event.type),
    ["disconnect"],
  );
  assert.equal(rpc.state, "closed");
});
