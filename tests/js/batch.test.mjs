// Batches from the server: answered with one array of the answers to their requests.

import assert from "node:assert/strict";
import { test } from "node:test";

import { error, notification, request, result, settle, setup } from "./fakes.mjs";

function byId(messages) {
  return messages.sort((a, b) => String(a.id).localeCompare(String(b.id)));
}

test("a batch of requests and notifications is answered with one array", async () => {
  const { rpc, socket, open } = setup();
  const seen = [];
  rpc.register("add", (a, b) => a + b);
  rpc.register("slow", async (x) => x);
  rpc.on("log", (text) => seen.push(text));
  await open();
  socket().receive([
    request("add", [1, 2], 1),
    notification("log", ["hello"]),
    request("slow", ["s"], 2),
    request("missing", undefined, 3),
  ]);
  await settle();
  assert.deepEqual(seen, ["hello"]);
  assert.equal(socket().sent.length, 1);
  const [answers] = socket().take();
  assert.ok(Array.isArray(answers));
  assert.deepEqual(byId(answers), [
    result(1, 3),
    result(2, "s"),
    error(3, -32601, "Method not found", "missing"),
  ]);
});

test("a batch of notifications only is not answered", async () => {
  const { rpc, socket, open } = setup();
  const seen = [];
  rpc.on("tick", (n) => seen.push(n));
  await open();
  socket().receive([notification("tick", [1]), notification("tick", [2])]);
  await settle();
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual(socket().take(), []);
});

test("an empty batch is answered with one Invalid Request error, not an array", async () => {
  const { socket, open } = setup();
  await open();
  socket().receive([]);
  await settle();
  assert.deepEqual(socket().take(), [error(null, -32600, "Invalid Request", "empty batch")]);
});

test("a batch of more than 100 messages is refused whole", async () => {
  const { rpc, socket, open } = setup();
  const seen = [];
  rpc.register("echo", (x) => seen.push(x));
  await open();
  const batch = Array.from({ length: 101 }, (_, index) => request("echo", [index], index));
  socket().receive(batch);
  socket().receive(batch.slice(1));
  await settle();
  const [refusal, answers] = socket().take();
  assert.deepEqual(
    refusal,
    error(
      null,
      -32600,
      "Invalid Request",
      "batch with 101 messages exceeds limit of 100 messages",
    ),
  );
  assert.equal(answers.length, 100);
  assert.equal(seen.length, 100);
});

test("invalid elements of a batch get their own errors in the answer", async () => {
  const { rpc, socket, open } = setup();
  rpc.register("echo", (x) => x);
  await open();
  socket().receive([1, request("echo", ["a"], 1), { jsonrpc: "2.0", method: "echo", id: [] }]);
  await settle();
  const [answers] = socket().take();
  assert.deepEqual(
    answers.map((answer) => [answer.id, answer.result ?? answer.error.code]),
    [
      [null, -32600],
      [1, "a"],
      [null, -32600],
    ],
  );
});

test("responses in a batch settle our calls and are not answered", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const first = rpc.call("a");
  const second = rpc.call("b");
  socket().take();
  socket().receive([
    result(2, "B"),
    error(1, -32000, "no", { type: "ValueError", message: "no" }),
  ]);
  assert.equal(await second, "B");
  await assert.rejects(first, (exc) => exc.typeName === "ValueError");
  await settle();
  assert.deepEqual(socket().take(), []);
});

test("a batch answers without its cancelled calls, at once", async () => {
  const { rpc, socket, open } = setup();
  rpc.register("hang", () => new Promise(() => {}));
  rpc.register("echo", (x) => x);
  await open();
  socket().receive([request("hang", undefined, 1), request("echo", ["e"], 2)]);
  await settle();
  assert.deepEqual(socket().take(), []);
  socket().receive(notification("$/cancel", { id: 1 }));
  await settle();
  assert.deepEqual(socket().take(), [[result(2, "e")]]);
});

test("a batch whose every call was cancelled is not answered", async () => {
  const { rpc, socket, open } = setup();
  rpc.register("hang", () => new Promise(() => {}));
  await open();
  socket().receive([request("hang", undefined, 1)]);
  await settle();
  socket().receive(notification("$/cancel", { id: 1 }));
  await settle();
  assert.deepEqual(socket().take(), []);
});
