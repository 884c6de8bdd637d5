// Browser-to-server calls: results, remote errors, timeouts, aborts, $/cancel, the proxy.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CallTimeout,
  ErrorCode,
  RemoteError,
  RPCError,
} from "../../src/socketeer/static/socketeer.js";
import { error, notification, request, result, settle, setup } from "./fakes.mjs";

function cancel(id) {
  return notification("$/cancel", { id });
}

test("call() sends positional params and resolves with the result", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const answer = rpc.call("add", 1, 2);
  assert.deepEqual(socket().take(), [request("add", [1, 2], 1)]);
  socket().receive(result(1, 3));
  assert.equal(await answer, 3);
});

test("callWith() sends named or positional params", async () => {
  const { rpc, socket, open } = setup();
  await open();
  rpc.callWith("move", { params: { x: 1, y: 2 } });
  rpc.callWith("move", { params: [1, 2] });
  rpc.callWith("reset");
  assert.deepEqual(socket().take(), [
    request("move", { x: 1, y: 2 }, 1),
    request("move", [1, 2], 2),
    request("reset", undefined, 3),
  ]);
});

test("results of every JSON type come through, null and empty ones too", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const values = [null, 0, "", false, [], {}, { nested: [1, "two"] }];
  const calls = values.map(() => rpc.call("value"));
  values.forEach((value, index) => socket().receive(result(index + 1, value)));
  assert.deepEqual(await Promise.all(calls), values);
});

test("an error answer rejects with RemoteError: code, message, typeName, data", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const failing = rpc.call("divide", 1, 0);
  const missing = rpc.call("nope");
  const data = { type: "ZeroDivisionError", message: "division by zero", traceback: "..." };
  socket().receive(error(1, -32000, "division by zero", data));
  socket().receive(error(2, -32601, "Method not found", "nope"));
  await assert.rejects(failing, (exc) => {
    assert.ok(exc instanceof RemoteError);
    assert.ok(exc instanceof RPCError);
    assert.equal(exc.name, "RemoteError");
    assert.equal(exc.code, ErrorCode.APPLICATION_ERROR);
    assert.equal(exc.message, "division by zero");
    assert.equal(exc.typeName, "ZeroDivisionError");
    assert.deepEqual(exc.data, data);
    assert.equal(exc.method, "divide");
    return true;
  });
  await assert.rejects(missing, (exc) => {
    assert.equal(exc.code, ErrorCode.METHOD_NOT_FOUND);
    assert.equal(exc.message, "Method not found");
    assert.equal(exc.typeName, null);
    assert.equal(exc.data, "nope");
    return true;
  });
});

test("the default timeout rejects with CallTimeout and sends $/cancel", async () => {
  const { rpc, clock, socket, open } = setup({ timeout: 1000 });
  await open();
  const slow = rpc.call("slow");
  let settled = false;
  slow.catch(() => {
    settled = true;
  });
  clock.advance(999);
  await settle();
  assert.equal(settled, false);
  clock.advance(1);
  await assert.rejects(slow, (exc) => {
    assert.ok(exc instanceof CallTimeout);
    assert.equal(exc.name, "TimeoutError");
    assert.equal(exc.method, "slow");
    assert.equal(exc.timeout, 1000);
    assert.equal(exc.message, "call slow timed out after 1000 ms");
    return true;
  });
  assert.deepEqual(socket().take(), [request("slow", undefined, 1), cancel(1)]);
  assert.equal(rpc.inFlight, 0);
  // A late answer is ignored.
  socket().receive(result(1, "late"));
  await settle();
  assert.deepEqual(socket().take(), []);
});

test("a per-call timeout overrides the default; 0 and Infinity mean none", async () => {
  const { rpc, clock, socket, open } = setup({ timeout: 1000 });
  await open();
  const quick = rpc.callWith("quick", { timeout: 10 });
  const patient = rpc.callWith("patient", { timeout: 0 });
  const forever = rpc.callWith("forever", { timeout: Infinity });
  clock.advance(10);
  await assert.rejects(quick, CallTimeout);
  clock.advance(1e12);
  socket().receive(result(2, "done"));
  socket().receive(result(3, "done too"));
  assert.equal(await patient, "done");
  assert.equal(await forever, "done too");
  await assert.rejects(rpc.callWith("x", { timeout: -1 }), RangeError);
});

test("with timeout: 0 as the default, calls arm no timer", async () => {
  const { rpc, clock, open } = setup({ timeout: 0 });
  await open();
  rpc.call("x");
  assert.deepEqual(clock.pending, []);
});

test("a queued call that times out leaves the queue and is never sent", async () => {
  const { rpc, clock, socket } = setup({ timeout: 1000 });
  const call = rpc.call("stale");
  rpc.connect();
  clock.advance(1000);
  await assert.rejects(call, CallTimeout);
  assert.equal(rpc.queued, 0);
  socket().open();
  assert.deepEqual(socket().take(), []);
});

test("the timeout counts from the call, queue time included", async () => {
  const { rpc, clock, socket } = setup({ timeout: 1000 });
  const call = rpc.call("x");
  rpc.connect();
  clock.advance(600);
  socket().open();
  clock.advance(400);
  await assert.rejects(call, CallTimeout);
  assert.deepEqual(socket().take(), [request("x", undefined, 1), cancel(1)]);
});

test("aborting a call in flight rejects with the reason and sends $/cancel", async () => {
  const { rpc, clock, socket, open } = setup();
  await open();
  const controller = new AbortController();
  const call = rpc.callWith("search", { params: ["cats"], signal: controller.signal });
  controller.abort();
  await assert.rejects(call, (exc) => exc.name === "AbortError");
  assert.deepEqual(socket().take(), [request("search", ["cats"], 1), cancel(1)]);
  assert.deepEqual(clock.pending, []); // the timeout timer is gone too

  const custom = new AbortController();
  const other = rpc.callWith("search", { signal: custom.signal });
  custom.abort(new Error("user left"));
  await assert.rejects(other, /user left/);
});

test("an aborted queued call leaves the queue; an aborted signal refuses the call", async () => {
  const { rpc, socket } = setup();
  const controller = new AbortController();
  const call = rpc.callWith("x", { signal: controller.signal });
  controller.abort();
  await assert.rejects(call, (exc) => exc.name === "AbortError");
  assert.equal(rpc.queued, 0);

  const refused = rpc.callWith("y", { signal: AbortSignal.abort() });
  await assert.rejects(refused, (exc) => exc.name === "AbortError");
  assert.equal(rpc.queued, 0);
  rpc.connect();
  socket().open();
  assert.deepEqual(socket().take(), []);
});

test("a settled call's signal can abort later without effect", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const controller = new AbortController();
  const call = rpc.callWith("x", { signal: controller.signal });
  socket().receive(result(1, "ok"));
  assert.equal(await call, "ok");
  controller.abort();
  assert.deepEqual(socket().take(), [request("x", undefined, 1)]);
});

test("notify() sends a notification, without id", async () => {
  const { rpc, socket, open } = setup();
  await open();
  rpc.notify("chat.typing", true);
  rpc.notifyWith("chat.typing", { params: { typing: false } });
  assert.deepEqual(socket().take(), [
    notification("chat.typing", [true]),
    notification("chat.typing", { typing: false }),
  ]);
});

test("a broken response rejects its call, is reported, and is answered with id null", async () => {
  const { rpc, socket, events, open } = setup();
  await open();
  const calls = [rpc.call("a"), rpc.call("b"), rpc.call("c"), rpc.call("d")];
  socket().take();
  socket().receive({ jsonrpc: "2.0", result: 1, error: { code: 1, message: "?" }, id: 1 });
  socket().receive({ jsonrpc: "2.0", error: { code: "bad", message: "?" }, id: 2 });
  socket().receive({ jsonrpc: "2.0", error: { code: 1 }, id: 3 });
  socket().receive({ jsonrpc: "1.0", result: 1, id: 4 });
  socket().receive({ jsonrpc: "2.0", result: 1 });
  socket().receive({ jsonrpc: "2.0", error: "no", id: 99 });
  const details = [
    'response with both "result" and "error" members',
    '"error" member must have an integer "code"',
    '"error" member must have a string "message"',
    '"jsonrpc" member must be "2.0"',
  ];
  for (const [index, call] of calls.entries()) {
    await assert.rejects(call, (exc) => {
      assert.equal(exc.name, "RPCError");
      assert.equal(exc.message, `invalid response from the server: ${details[index]}`);
      return true;
    });
  }
  await settle();
  // Never answered with their ids, which name our calls, not the server's.
  assert.deepEqual(socket().take(), [
    ...details.map((detail) => error(null, -32600, "Invalid Request", detail)),
    error(null, -32600, "Invalid Request", 'response without "id" member'),
    error(null, -32600, "Invalid Request", '"error" member must be an object'),
  ]);
  assert.equal(events.filter((event) => event.type === "error").length, 5);
});

test("answers to unknown ids are ignored; an error with a null id is an error event", async () => {
  const { rpc, socket, events, open } = setup();
  await open();
  socket().receive(result(99, "who?"));
  socket().receive(error(null, -32700, "Parse error"));
  await settle();
  assert.deepEqual(socket().take(), []);
  const reported = events.filter((event) => event.type === "error");
  assert.equal(reported.length, 1);
  assert.ok(reported[0].error instanceof RemoteError);
  assert.equal(reported[0].error.code, -32700);
  assert.equal(rpc.state, "open");
});

test("ids keep increasing across reconnections", async () => {
  const { rpc, clock, socket, open } = setup({ initialDelay: 10, maxDelay: 10 });
  await open();
  rpc.call("a").catch(() => {});
  socket().serverClose(1012);
  clock.advance(10);
  socket().open();
  rpc.call("b");
  assert.deepEqual(socket().take(), [request("b", undefined, 2)]);
});

test("the proxy builds dotted method names", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const incremented = rpc.proxy.counter.increment(1);
  const added = rpc.proxy.add(2, 3);
  rpc.proxy.a.b.c.d();
  assert.deepEqual(socket().take(), [
    request("counter.increment", [1], 1),
    request("add", [2, 3], 2),
    request("a.b.c.d", undefined, 3),
  ]);
  socket().receive(result(1, 42));
  socket().receive(result(2, 5));
  assert.equal(await incremented, 42);
  assert.equal(await added, 5);
  assert.equal(rpc.proxy, rpc.proxy);
  const counter = rpc.proxy.counter;
  counter.reset();
  assert.equal(socket().take()[0].method, "counter.reset");
});

test("the proxy ignores what JavaScript looks up by itself, and non-identifiers", async () => {
  const { rpc, socket, open } = setup();
  await open();
  assert.equal(rpc.proxy.then, undefined);
  assert.equal(rpc.proxy.counter.then, undefined);
  const awaited = await rpc.proxy.counter; // not a thenable: awaiting it calls nothing
  assert.equal(typeof awaited, "function");
  assert.equal(rpc.proxy.toJSON, undefined);
  assert.equal(JSON.stringify({ api: rpc.proxy }), "{}");
  assert.equal(rpc.proxy._private, undefined);
  assert.equal(rpc.proxy.$x, undefined);
  assert.equal(rpc.proxy[Symbol.iterator], undefined);
  assert.throws(() => rpc.proxy(), TypeError);
  await settle();
  assert.deepEqual(socket().take(), []);
});

test("the proxy's promises reject like call()'s", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const call = rpc.proxy.boom();
  socket().receive(error(1, -32000, "boom", { type: "RuntimeError", message: "boom" }));
  await assert.rejects(call, (exc) => exc.typeName === "RuntimeError");
});
