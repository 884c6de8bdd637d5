// Server-to-browser calls (register), notifications (on), and invalid messages from the server.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectionLost } from "../../src/socketeer/static/socketeer.js";
import { error, notification, request, result, settle, setup } from "./fakes.mjs";

// Answers to concurrent calls may come in any order: compare them sorted by id.
function byId(messages) {
  return messages.sort((a, b) => String(a.id).localeCompare(String(b.id)));
}

test("a registered function answers the server's requests, sync or async", async () => {
  const { rpc, socket, open } = setup();
  rpc.register("add", (a, b) => a + b);
  rpc.register("ui.confirm", async (text) => `confirmed: ${text}`);
  rpc.register("ui.flash", () => {});
  rpc.register("point", ({ x, y }) => x * y);
  await open();
  socket().receive(request("add", [1, 2], 1));
  socket().receive(request("ui.confirm", ["delete?"], "two"));
  socket().receive(request("ui.flash", undefined, 3));
  socket().receive(request("point", { x: 3, y: 4 }, 4));
  await settle();
  assert.deepEqual(byId(socket().take()), [
    result(1, 3),
    result(3, null), // no return value: null, as JSON-RPC requires a result
    result(4, 12),
    result("two", "confirmed: delete?"),
  ]);
});

test("a thrown error goes back as -32000 with its name and message", async () => {
  const { rpc, socket, open } = setup();
  class ValidationError extends Error {
    name = "ValidationError";
  }
  rpc.register("check", () => {
    throw new ValidationError("too short");
  });
  rpc.register("fetch", async () => {
    throw new TypeError("not a URL");
  });
  rpc.register("weird", () => {
    throw "a string"; // eslint-disable-line no-throw-literal
  });
  rpc.register("empty", () => {
    throw new RangeError();
  });
  await open();
  socket().receive(request("check", ["ab"], 1));
  socket().receive(request("fetch", undefined, 2));
  socket().receive(request("weird", undefined, 3));
  socket().receive(request("empty", undefined, 4));
  await settle();
  assert.deepEqual(byId(socket().take()), [
    error(1, -32000, "too short", { type: "ValidationError", message: "too short" }),
    error(2, -32000, "not a URL", { type: "TypeError", message: "not a URL" }),
    error(3, -32000, "a string", { type: "Error", message: "a string" }),
    // Without a message, the type names the error.
    error(4, -32000, "RangeError", { type: "RangeError", message: "" }),
  ]);
});

test("unknown methods, reserved names and unregistered names answer -32601", async () => {
  const { rpc, socket, open } = setup();
  const unregister = rpc.register("gone", () => 1);
  rpc.on("only.notified", () => {});
  unregister();
  unregister(); // twice is harmless
  await open();
  for (const [index, method] of [
    "nope",
    "gone",
    "only.notified",
    "$/unknown",
    "rpc.discover",
  ].entries()) {
    socket().receive(request(method, undefined, index));
  }
  await settle();
  assert.deepEqual(socket().take(), [
    error(0, -32601, "Method not found", "nope"),
    error(1, -32601, "Method not found", "gone"),
    error(2, -32601, "Method not found", "only.notified"),
    error(3, -32601, "Method not found", "$/unknown"),
    error(4, -32601, "Method not found", "rpc.discover"),
  ]);
});

test("$/cancel aborts the function's signal, and nothing is answered", async () => {
  const { rpc, socket, open } = setup();
  let context;
  rpc.register("ui.prompt", function (question) {
    context = this;
    return new Promise(() => {}); // never answers by itself
  });
  await open();
  socket().receive(request("ui.prompt", ["name?"], 7));
  await settle();
  assert.equal(context.id, 7);
  assert.equal(context.method, "ui.prompt");
  assert.equal(context.signal.aborted, false);
  let reason;
  context.signal.addEventListener("abort", () => {
    reason = context.signal.reason;
  });
  socket().receive(notification("$/cancel", { id: 7 }));
  await settle();
  assert.equal(context.signal.aborted, true);
  assert.equal(reason.name, "AbortError");
  assert.deepEqual(socket().take(), []);
  // A cancel for an unknown or finished call is ignored.
  socket().receive(notification("$/cancel", { id: 7 }));
  socket().receive(notification("$/cancel", { id: 99 }));
  socket().receive(notification("$/cancel", {}));
  await settle();
  assert.deepEqual(socket().take(), []);
});

test("a cancelled function that answers anyway answers nothing; others still answer", async () => {
  const { rpc, socket, open } = setup();
  const release = [];
  rpc.register("work", (n) => new Promise((resolve) => release.push(() => resolve(n))));
  await open();
  socket().receive(request("work", [1], 1));
  socket().receive(request("work", [2], 2));
  await settle();
  socket().receive(notification("$/cancel", { id: 1 }));
  for (const done of release) {
    done();
  }
  await settle();
  assert.deepEqual(socket().take(), [result(2, 2)]);
});

test("a lost connection aborts running functions; their answers are not sent later", async () => {
  const { rpc, clock, socket, open } = setup({ initialDelay: 10, maxDelay: 10 });
  let context;
  let finish;
  rpc.register("slow", function () {
    context = this;
    return new Promise((resolve) => {
      finish = resolve;
    });
  });
  await open();
  socket().receive(request("slow", undefined, 1));
  await settle();
  socket().serverClose(1006, "", false);
  assert.equal(context.signal.aborted, true);
  assert.equal(context.signal.reason.name, "AbortError");
  clock.advance(10);
  socket().open();
  finish("too late");
  await settle();
  assert.deepEqual(socket().take(), []);
});

test("the server's $/ping is answered with pong", async () => {
  const { socket, open } = setup();
  await open();
  socket().receive(request("$/ping", undefined, 5));
  await settle();
  assert.deepEqual(socket().take(), [result(5, "pong")]);
});

test("results that are not JSON answer -32603", async () => {
  const { rpc, socket, open } = setup();
  rpc.register("big", () => 1n);
  rpc.register("fn", () => () => {});
  await open();
  socket().receive(request("big", undefined, 1));
  socket().receive(request("fn", undefined, 2));
  await settle();
  const [first, second] = byId(socket().take());
  assert.deepEqual(first.id, 1);
  assert.equal(first.error.code, -32603);
  assert.equal(first.error.message, "Internal error");
  assert.match(first.error.data, /^result is not JSON: .*BigInt/);
  assert.deepEqual(second, error(2, -32603, "Internal error", "result is not JSON: a function"));
});

const BAD_ID = '"id" member must be a string, a finite number or null';

test("what JSON cannot carry is never sent: results answer -32603, details are mended", async () => {
  const { rpc, socket, open } = setup();
  rpc.register("nan", () => [1, NaN]);
  rpc.register("lone", () => ({ text: "\ud83d" }));
  rpc.register("fails", () => {
    throw new Error("bad \udc00 text");
  });
  await open();
  socket().receive(request("nan", undefined, 1));
  socket().receive(request("lone", undefined, 2));
  socket().receive(request("fails", undefined, 3));
  socket().receive('{"jsonrpc":"2.0","method":"x\\ud800","id":4}');
  socket().receive('{"jsonrpc":"2.0","method":"x","id":"\\ud800"}');
  socket().receive(request("a".repeat(200), undefined, 5));
  await settle();
  assert.deepEqual(byId(socket().take()), [
    error(1, -32603, "Internal error", "result is not JSON: NaN is not a JSON number"),
    error(
      2,
      -32603,
      "Internal error",
      "result is not JSON: a string with a lone UTF-16 surrogate is not JSON text",
    ),
    error(3, -32000, "bad \ufffd text", { type: "Error", message: "bad \ufffd text" }),
    error(4, -32601, "Method not found", "x\ufffd"),
    error(5, -32601, "Method not found", `${"a".repeat(128)}…`),
    error(null, -32600, "Invalid Request", BAD_ID),
  ]);
});

test("register() refuses invalid and reserved names, duplicates and non-functions", () => {
  const { rpc } = setup();
  for (const name of [
    "",
    "_private",
    "a._b",
    "a..b",
    "1a",
    "$/ping",
    "rpc.discover",
    "a-b",
    "x".repeat(129),
  ]) {
    assert.throws(() => rpc.register(name, () => {}), TypeError, name);
  }
  rpc.register("x".repeat(128), () => {});
  rpc.register("ok", () => {});
  assert.throws(() => rpc.register("ok", () => {}), /ok is registered already/);
  assert.throws(() => rpc.register("other", 42), TypeError);
  assert.throws(() => rpc.on("$/room/message", () => {}), TypeError);
});

test("on() listens to notifications: spread or named params; unsubscribe stops it", async () => {
  const { rpc, socket, open } = setup();
  const seen = [];
  const unsubscribe = rpc.on("chat.message", (user, text) => seen.push(["first", user, text]));
  rpc.on("chat.message", (...args) => seen.push(["second", ...args]));
  rpc.on("chat.presence", (params) => seen.push(["presence", params]));
  await open();
  socket().receive(notification("chat.message", ["ada", "hi"]));
  socket().receive(notification("chat.presence", { online: 3 }));
  socket().receive(notification("chat.nobody", [1]));
  unsubscribe();
  unsubscribe();
  socket().receive(notification("chat.message", ["bob", "yo"]));
  socket().receive(notification("chat.message"));
  await settle();
  assert.deepEqual(seen, [
    ["first", "ada", "hi"],
    ["second", "ada", "hi"],
    ["presence", { online: 3 }],
    ["second", "bob", "yo"],
    ["second"],
  ]);
  assert.deepEqual(socket().take(), []); // notifications are never answered
});

test("the same function may listen twice and be unsubscribed once", async () => {
  const { rpc, socket, open } = setup();
  const seen = [];
  const listener = (value) => seen.push(value);
  const first = rpc.on("tick", listener);
  rpc.on("tick", listener);
  first();
  await open();
  socket().receive(notification("tick", [1]));
  assert.deepEqual(seen, [1]);
});

test("a listener that throws is reported as an error event; the others still run", async () => {
  const { rpc, socket, events, open } = setup();
  const seen = [];
  rpc.on("tick", () => {
    throw new Error("listener failed");
  });
  rpc.on("tick", async () => {
    throw new Error("async listener failed");
  });
  rpc.on("tick", (n) => seen.push(n));
  await open();
  socket().receive(notification("tick", [1]));
  await settle();
  assert.deepEqual(seen, [1]);
  const messages = events.filter((event) => event.type === "error").map((event) => event.message);
  assert.deepEqual(messages, ["listener failed", "async listener failed"]);
  assert.equal(rpc.state, "open");
});

test("a notification for a registered function runs it and discards the result", async () => {
  const { rpc, socket, events, open } = setup();
  const seen = [];
  rpc.register("log", function (text) {
    seen.push([text, this.id, this.signal.aborted]);
    return "ignored";
  });
  rpc.register("bad", () => {
    throw new Error("bad notification");
  });
  await open();
  socket().receive(notification("log", ["hello"]));
  socket().receive(notification("bad"));
  await settle();
  assert.deepEqual(seen, [["hello", undefined, false]]);
  assert.deepEqual(socket().take(), []);
  assert.equal(events.at(-1).message, "bad notification");
});

test("the internal _on() listens to reserved notifications for the layers above", async () => {
  const { rpc, socket, open } = setup();
  const seen = [];
  rpc._on("$/room/message", (params) => seen.push(params));
  await open();
  socket().receive(notification("$/room/message", { room: "lobby", data: 1 }));
  assert.deepEqual(seen, [{ room: "lobby", data: 1 }]);
});

test("invalid messages are answered with JSON-RPC errors and reported", async () => {
  const { socket, events, open } = setup();
  await open();
  socket().receive("{not json");
  socket().receive(new ArrayBuffer(3));
  socket().receive({ jsonrpc: "1.0", method: "x", id: 1 });
  socket().receive({ jsonrpc: "2.0", method: 42, id: 2 });
  socket().receive({ jsonrpc: "2.0", method: "x", params: "bad", id: 3 });
  socket().receive({ jsonrpc: "2.0", method: "x", id: { bad: true } });
  socket().receive({ jsonrpc: "2.0", method: "x", params: null });
  socket().receive({ jsonrpc: "2.0", id: 4 });
  socket().receive(42);
  socket().receive(null);
  await settle();
  const answers = socket().take();
  assert.match(answers[0].error.data, /^invalid JSON: /);
  answers[0].error.data = "invalid JSON: ...";
  assert.deepEqual(answers, [
    error(null, -32700, "Parse error", "invalid JSON: ..."),
    error(null, -32700, "Parse error", "binary message"),
    error(1, -32600, "Invalid Request", '"jsonrpc" member must be "2.0"'),
    error(2, -32600, "Invalid Request", '"method" member must be a string'),
    error(3, -32600, "Invalid Request", '"params" member must be an array or an object'),
    error(
      null,
      -32600,
      "Invalid Request",
      '"id" member must be a string, a finite number or null',
    ),
    error(null, -32600, "Invalid Request", '"params" member must be an array or an object'),
    error(null, -32600, "Invalid Request", 'missing "method" member'),
    error(null, -32600, "Invalid Request", "expected an object, got a number"),
    error(null, -32600, "Invalid Request", "expected an object, got null"),
  ]);
  assert.equal(events.filter((event) => event.type === "error").length, 1);
  assert.match(events.at(-1).message, /^the server sent invalid JSON: /);
});

test("a loss rejects calls in flight and aborts the functions the server called", async () => {
  const { rpc, socket, open } = setup();
  let signal;
  rpc.register("wait", function () {
    signal = this.signal;
    return new Promise(() => {});
  });
  await open();
  const call = rpc.call("work");
  socket().receive(request("wait", undefined, "s1"));
  await settle();
  socket().fail();
  await assert.rejects(call, ConnectionLost);
  assert.equal(signal.aborted, true);
  rpc.close();
});
