// The heartbeat: a $/ping request every heartbeatInterval; no answer within heartbeatTimeout
// closes the socket with 4000 and reconnects, without waiting for the socket's close event.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CloseCode, ConnectionLost } from "../../src/socketeer/static/socketeer.js";
import { error, request, result, settle, setup } from "./fakes.mjs";

const HEARTBEAT = { heartbeatInterval: 20_000, heartbeatTimeout: 10_000 };

test("a ping goes out every heartbeatInterval while the answers come", async () => {
  const { rpc, clock, socket, open } = setup(HEARTBEAT);
  await open();
  clock.advance(19_999);
  assert.deepEqual(socket().take(), []);
  clock.advance(1);
  assert.deepEqual(socket().take(), [request("$/ping", undefined, 1)]);
  clock.advance(9_000);
  socket().receive(result(1, "pong"));
  clock.advance(19_999);
  assert.deepEqual(socket().take(), []);
  clock.advance(1);
  assert.deepEqual(socket().take(), [request("$/ping", undefined, 2)]);
  // An error answer shows the connection works too.
  socket().receive(error(2, -32601, "Method not found", "$/ping"));
  clock.advance(20_000);
  assert.deepEqual(socket().take(), [request("$/ping", undefined, 3)]);
  assert.equal(rpc.state, "open");
  rpc.close();
});

test("pings share the ids of calls", async () => {
  const { rpc, clock, socket, open } = setup(HEARTBEAT);
  await open();
  const call = rpc.call("x");
  clock.advance(20_000);
  assert.deepEqual(socket().take(), [request("x", undefined, 1), request("$/ping", undefined, 2)]);
  socket().receive(result(1, "answer"));
  assert.equal(await call, "answer");
  rpc.close();
});

test("a half-open connection is noticed within heartbeatInterval + heartbeatTimeout", async () => {
  const { rpc, clock, sockets, socket, events, open } = setup({
    ...HEARTBEAT,
    timeout: 0,
    initialDelay: 100,
    maxDelay: 100,
  });
  await open();
  const inFlight = rpc.call("x");
  socket().take();
  clock.advance(20_000 + 10_000 - 1);
  assert.equal(rpc.state, "open");
  clock.advance(1);
  // The socket never fires close (the peer is gone): the client does not wait for it.
  assert.equal(rpc.state, "reconnecting");
  assert.deepEqual(sockets[0].closeCalls, [{ code: 4000, reason: "heartbeat timeout" }]);
  assert.equal(CloseCode.HEARTBEAT_TIMEOUT, 4000);
  await assert.rejects(inFlight, (exc) => exc instanceof ConnectionLost && exc.code === 4000);
  assert.deepEqual(events.slice(-2), [
    {
      type: "disconnect",
      code: 4000,
      reason: "heartbeat timeout",
      wasClean: false,
      willReconnect: true,
    },
    { type: "reconnecting", attempt: 1, delay: 100 },
  ]);
  // The old socket's late answer and close change nothing.
  sockets[0].receive(result(2, "pong"));
  sockets[0].serverClose(1006, "", false);
  assert.equal(rpc.state, "reconnecting");
  clock.advance(100);
  assert.equal(sockets.length, 2);
  socket().open();
  assert.equal(rpc.state, "open");
  rpc.close();
  await settle();
});

test("heartbeatInterval: 0 disables the heartbeat", async () => {
  const { rpc, clock, socket, open } = setup({
    heartbeatInterval: 0,
    timeout: 0,
    connectTimeout: 0,
  });
  await open();
  assert.deepEqual(clock.pending, []);
  clock.advance(1e9);
  assert.deepEqual(socket().take(), []);
  assert.equal(rpc.state, "open");
});

test("the heartbeat stops with the connection and restarts with the next one", async () => {
  const { rpc, clock, socket, open } = setup({ ...HEARTBEAT, initialDelay: 10, maxDelay: 10 });
  await open();
  clock.advance(15_000);
  socket().serverClose(1012);
  clock.advance(10);
  socket().open();
  clock.advance(19_999);
  assert.deepEqual(socket().take(), []);
  clock.advance(1);
  assert.deepEqual(socket().take(), [request("$/ping", undefined, 1)]);
  rpc.close();
  assert.deepEqual(clock.pending, []);
});
