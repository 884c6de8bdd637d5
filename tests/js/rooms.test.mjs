// Rooms: subscribe() joins with $/room/join, delivers each publication once and in offset order,
// recovers gaps and reconnections with `since`, and reports what it cannot recover (onReset).

import assert from "node:assert/strict";
import { test } from "node:test";

import { ClientClosed, RPCError, RemoteError } from "../../src/socketeer/static/socketeer.js";
import { error, notification, request, result, settle, setup } from "./fakes.mjs";

// As MAX_HELD in socketeer.js: publications held out of order per room.
const MAX_HELD = 1000;

/** The client's `$/room/join` request. */
function join(id, room, since) {
  return request("$/room/join", since === undefined ? { room } : { room, since }, id);
}

/** The server's answer to a join. */
function joined(id, epoch, offset, recovered = true) {
  return result(id, { epoch, offset, recovered });
}

/** A `$/room/message` notification. */
function publication(room, epoch, offset, data = `#${offset}`, extra = {}) {
  return notification("$/room/message", { room, epoch, offset, data, ...extra });
}

/** A callback that records what it gets, and the offsets it got. */
function recorder() {
  const seen = [];
  const callback = (data, meta) => seen.push({ data, ...meta });
  const offsets = () => seen.map((item) => item.offset);
  return { seen, callback, offsets };
}

/** The messages of the error events among `events`. */
function errors(events) {
  return events.filter((event) => event.type === "error").map((event) => event.message);
}

/**
 * An open client subscribed to "lobby", joined at `epoch`:`offset` by request 1; the sent
 * messages taken; `resets` records the onReset() calls.
 */
async function lobby({ epoch = "e1", offset = 0, ...options } = {}) {
  const env = setup(options);
  await env.open();
  const record = recorder();
  const resets = [];
  const subscription = env.rpc.subscribe("lobby", record.callback, {
    onReset: (position) => resets.push({ ...position }),
  });
  assert.deepEqual(env.socket().take(), [join(1, "lobby")]);
  env.socket().receive(joined(1, epoch, offset));
  await settle();
  return { ...env, ...record, resets, subscription };
}

test("subscribe() before connect(): the join goes out on open, before queued calls", async () => {
  const { rpc, socket } = setup();
  const { seen, callback } = recorder();
  const subscription = rpc.subscribe("lobby", callback);
  assert.equal(subscription.room, "lobby");
  rpc.call("hello");
  assert.equal(rpc.queued, 1); // the join is not a queued call: it goes out first
  rpc.connect();
  socket().open();
  assert.deepEqual(socket().take(), [join(1, "lobby"), request("hello", undefined, 2)]);
  socket().receive(joined(1, "e1", 4));
  assert.deepEqual(await subscription.ready, { room: "lobby", epoch: "e1", offset: 4 });
  socket().receive(publication("lobby", "e1", 5, { text: "hi" }));
  assert.deepEqual(seen, [{ data: { text: "hi" }, room: "lobby", epoch: "e1", offset: 5 }]);
});

test("publications reach their room's callbacks with meta; other rooms' are ignored", async () => {
  const { rpc, socket, seen, events } = await lobby({ offset: 2 });
  const other = recorder();
  rpc.subscribe("news", other.callback);
  assert.deepEqual(socket().take(), [join(2, "news")]); // joined at once: the client is open
  socket().receive(joined(2, "n", 0));
  await settle();
  socket().receive(publication("lobby", "e1", 3, [1, "two", null]));
  socket().receive(publication("news", "n", 1, "extra!"));
  socket().receive(publication("elsewhere", "x", 1, "not for us"));
  socket().receive(publication("lobby", "e1", 4, null));
  assert.deepEqual(seen, [
    { data: [1, "two", null], room: "lobby", epoch: "e1", offset: 3 },
    { data: null, room: "lobby", epoch: "e1", offset: 4 },
  ]);
  assert.deepEqual(other.seen, [{ data: "extra!", room: "news", epoch: "n", offset: 1 }]);
  assert.deepEqual(errors(events), []);
  assert.deepEqual(socket().take(), []);
});

test("base64 data arrives as a Uint8Array; undecodable data is reported and skipped", async () => {
  const { socket, seen, events, offsets } = await lobby();
  socket().receive(publication("lobby", "e1", 1, "AAEC/w==", { encoding: "base64" }));
  socket().receive(publication("lobby", "e1", 2, "", { encoding: "base64" }));
  assert.ok(seen[0].data instanceof Uint8Array);
  assert.deepEqual([...seen[0].data], [0, 1, 2, 255]);
  assert.deepEqual([...seen[1].data], []);

  socket().receive(publication("lobby", "e1", 3, "not base64!", { encoding: "base64" }));
  socket().receive(publication("lobby", "e1", 4, "x", { encoding: "gzip" }));
  socket().receive(publication("lobby", "e1", 5, "next"));
  // The broken ones are skipped, not recovered again: no gap, no join.
  assert.deepEqual(offsets(), [1, 2, 5]);
  assert.deepEqual(socket().take(), []);
  const [invalid, unknown] = errors(events);
  assert.match(invalid, /^publication 3 of room lobby: invalid base64: /); // atob()'s words
  assert.equal(unknown, 'publication 4 of room lobby: unknown encoding "gzip"');
});

test("subscriptions to one room share its join; the last unsubscribe() leaves it", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const first = recorder();
  const second = recorder();
  const one = rpc.subscribe("lobby", first.callback);
  const two = rpc.subscribe("lobby", second.callback);
  assert.deepEqual(socket().take(), [join(1, "lobby")]);
  socket().receive(joined(1, "e1", 7));
  assert.deepEqual(await Promise.all([one.ready, two.ready]), [
    { room: "lobby", epoch: "e1", offset: 7 },
    { room: "lobby", epoch: "e1", offset: 7 },
  ]);
  // A later subscription to a joined room is ready at once, from where the room is.
  socket().receive(publication("lobby", "e1", 8));
  const third = recorder();
  const three = rpc.subscribe("lobby", third.callback);
  assert.deepEqual(await three.ready, { room: "lobby", epoch: "e1", offset: 8 });
  assert.deepEqual(socket().take(), []);

  socket().receive(publication("lobby", "e1", 9));
  one.unsubscribe();
  socket().receive(publication("lobby", "e1", 10));
  two.unsubscribe();
  two.unsubscribe(); // twice is harmless
  assert.deepEqual(socket().take(), []);
  three.unsubscribe();
  assert.deepEqual(socket().take(), [request("$/room/leave", { room: "lobby" }, 2)]);
  socket().receive(result(2, null));
  socket().receive(publication("lobby", "e1", 11)); // sent before the leave: ignored
  assert.deepEqual(first.offsets(), [8, 9]);
  assert.deepEqual(second.offsets(), [8, 9, 10]);
  assert.deepEqual(third.offsets(), [9, 10]);
  await settle();
});

test("unsubscribing while not connected sends nothing; the room is not joined again", async () => {
  const { rpc, clock, socket, open } = setup();
  await open();
  const kept = rpc.subscribe("kept", () => {});
  const left = rpc.subscribe("left", () => {});
  socket().take();
  socket().serverClose(1012);
  left.unsubscribe();
  clock.advance(1000);
  socket().open();
  assert.deepEqual(socket().take(), [join(3, "kept")]);
  kept.unsubscribe();
  await assert.rejects(left.ready, { name: "AbortError" });
});

test("publications held during a first join: delivered after its position, in order", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const { callback, offsets } = recorder();
  const subscription = rpc.subscribe("lobby", callback);
  // The server made us a member, then read the room's position (3) and answered; live
  // publications on either side of that, in any order, with duplicates.
  for (const offset of [3, 5, 4, 5, 6]) {
    socket().receive(publication("lobby", "e1", offset));
  }
  assert.deepEqual(offsets(), []);
  socket().receive(joined(1, "e1", 3));
  await settle();
  assert.deepEqual(offsets(), [4, 5, 6]);
  assert.deepEqual((await subscription.ready).offset, 3);
  socket().receive(publication("lobby", "e1", 7));
  socket().receive(publication("lobby", "e1", 6)); // a duplicate, after the answer
  assert.deepEqual(offsets(), [4, 5, 6, 7]);
});

test("in a recovery, out-of-order and duplicate publications come once, in order", async () => {
  const { socket, clock, offsets, resets } = await lobby({ offset: 3 });
  socket().serverClose(1012);
  clock.advance(1000);
  socket().open();
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 3 })]);
  // Recovered 4 and 5 (before the answer), live 6 and 7 interleaved, 4 repeated.
  for (const offset of [4, 6, 5, 4, 7]) {
    socket().receive(publication("lobby", "e1", offset));
  }
  assert.deepEqual(offsets(), [4, 5, 6, 7]);
  socket().receive(joined(2, "e1", 5));
  await settle();
  socket().receive(publication("lobby", "e1", 8));
  assert.deepEqual(offsets(), [4, 5, 6, 7, 8]);
  assert.deepEqual(resets, []);
  assert.deepEqual(socket().take(), []);
});

test("a gap joins again with `since` and resumes in order", async () => {
  const { socket, offsets, resets } = await lobby({ offset: 0 });
  socket().receive(publication("lobby", "e1", 1));
  socket().receive(publication("lobby", "e1", 4)); // 2 and 3 were dropped for us
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 1 })]);
  socket().receive(publication("lobby", "e1", 5)); // live, held
  assert.deepEqual(offsets(), [1]);
  socket().receive(publication("lobby", "e1", 2)); // recovered
  socket().receive(publication("lobby", "e1", 3));
  assert.deepEqual(offsets(), [1, 2, 3, 4, 5]);
  socket().receive(joined(2, "e1", 3));
  await settle();
  socket().receive(publication("lobby", "e1", 6));
  assert.deepEqual(offsets(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(resets, []);
  assert.deepEqual(socket().take(), []);
});

test("a gap still open after the recovery's answer makes another join", async () => {
  const { socket, offsets } = await lobby({ offset: 0 });
  socket().receive(publication("lobby", "e1", 2));
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 0 })]);
  socket().receive(publication("lobby", "e1", 1));
  socket().receive(publication("lobby", "e1", 4)); // 3 dropped while recovering
  socket().receive(joined(2, "e1", 2));
  await settle();
  assert.deepEqual(offsets(), [1, 2]);
  assert.deepEqual(socket().take(), [join(3, "lobby", { epoch: "e1", offset: 2 })]);
  socket().receive(publication("lobby", "e1", 3));
  socket().receive(joined(3, "e1", 4));
  await settle();
  assert.deepEqual(offsets(), [1, 2, 3, 4]);
  assert.deepEqual(socket().take(), []);
});

test("recovered: false is a reset: onReset, then delivery from the new position", async () => {
  const { socket, offsets, resets } = await lobby({ offset: 2 });
  socket().receive(publication("lobby", "e1", 50));
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 2 })]);
  socket().receive(publication("lobby", "e1", 52));
  socket().receive(publication("lobby", "e1", 51));
  socket().receive(joined(2, "e1", 50, false)); // the history starts after 3
  await settle();
  assert.deepEqual(resets, [{ room: "lobby", epoch: "e1", offset: 50 }]);
  socket().receive(publication("lobby", "e1", 53));
  assert.deepEqual(offsets(), [51, 52, 53]);
  assert.deepEqual(socket().take(), []);
});

test("publications the server sent before its answer but that never came are a reset", async () => {
  const { socket, clock, offsets, resets } = await lobby({ offset: 0 });
  socket().serverClose(1012);
  clock.advance(1000);
  socket().open();
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 0 })]);
  socket().receive(publication("lobby", "e1", 1));
  socket().receive(publication("lobby", "e1", 3)); // 2 is missing
  socket().receive(publication("lobby", "e1", 5));
  socket().receive(joined(2, "e1", 3));
  await settle();
  // 2 is lost (not recovered again, which could go on forever); 5 follows a gap: recover it.
  assert.deepEqual(resets, [{ room: "lobby", epoch: "e1", offset: 3 }]);
  assert.deepEqual(offsets(), [1]);
  assert.deepEqual(socket().take(), [join(3, "lobby", { epoch: "e1", offset: 3 })]);
  socket().receive(publication("lobby", "e1", 4));
  assert.deepEqual(offsets(), [1, 4, 5]);
});

test("a new epoch is a reset, found by the join it starts", async () => {
  const { socket, offsets, resets, subscription } = await lobby({ offset: 9 });
  socket().receive(publication("lobby", "e2", 1)); // the broker restarted
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 9 })]);
  socket().receive(publication("lobby", "e2", 2));
  socket().receive(joined(2, "e2", 0, false));
  await settle();
  assert.deepEqual(resets, [{ room: "lobby", epoch: "e2", offset: 0 }]);
  assert.deepEqual(offsets(), [1, 2]);
  assert.deepEqual((await subscription.ready).epoch, "e1");
});

test("a reconnection joins again with `since`, before the queued calls, and recovers", async () => {
  const { rpc, socket, clock, seen, offsets, resets, events } = await lobby({ offset: 6 });
  socket().receive(publication("lobby", "e1", 7));
  socket().serverClose(1012, "restarting");
  const queued = rpc.call("after");
  clock.advance(1000);
  socket().open();
  assert.deepEqual(socket().take(), [
    join(2, "lobby", { epoch: "e1", offset: 7 }),
    request("after", undefined, 3),
  ]);
  socket().receive(publication("lobby", "e1", 8));
  socket().receive(publication("lobby", "e1", 10)); // live
  socket().receive(publication("lobby", "e1", 9));
  socket().receive(joined(2, "e1", 9));
  socket().receive(result(3, "done"));
  assert.equal(await queued, "done");
  assert.deepEqual(offsets(), [7, 8, 9, 10]);
  assert.ok(seen.every((item) => item.epoch === "e1" && item.room === "lobby"));
  assert.deepEqual(resets, []);
  assert.deepEqual(errors(events), []);
});

test("a reconnection that cannot recover resets the room", async () => {
  const { socket, clock, offsets, resets } = await lobby({ offset: 6 });
  socket().serverClose(1013, "try again later");
  clock.advance(1000);
  socket().open();
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 6 })]);
  socket().receive(joined(2, "e1", 900, false));
  await settle();
  socket().receive(publication("lobby", "e1", 901));
  assert.deepEqual(resets, [{ room: "lobby", epoch: "e1", offset: 900 }]);
  assert.deepEqual(offsets(), [901]);
});

test("a join lost with the connection is made again on the next one, without errors", async () => {
  const { rpc, socket, clock, open, events } = setup();
  await open();
  const { callback, offsets } = recorder();
  const subscription = rpc.subscribe("lobby", callback);
  assert.deepEqual(socket().take(), [join(1, "lobby")]);
  socket().receive(publication("lobby", "e1", 3)); // held, then lost with the connection
  socket().serverClose(1006, "", false);
  await settle();
  clock.advance(1000);
  socket().open();
  assert.deepEqual(socket().take(), [join(2, "lobby")]); // nothing delivered: no `since`
  socket().receive(joined(2, "e1", 3));
  assert.deepEqual(await subscription.ready, { room: "lobby", epoch: "e1", offset: 3 });
  socket().receive(publication("lobby", "e1", 4));
  assert.deepEqual(offsets(), [4]);
  assert.deepEqual(
    events.map((event) => event.type),
    ["connect", "disconnect", "reconnecting", "connect"],
  );
});

test("held publications are bounded: beyond, they are dropped and the join resets", async () => {
  const { rpc, socket, open } = setup();
  await open();
  const { callback, offsets } = recorder();
  const resets = [];
  rpc.subscribe("lobby", callback, { onReset: (position) => resets.push({ ...position }) });
  socket().take();
  // Before the answer, everything is held: one more than the bound, out of order.
  for (let offset = MAX_HELD + 2; offset >= 2; offset--) {
    socket().receive(publication("lobby", "e1", offset));
  }
  socket().receive(joined(1, "e1", 1));
  await settle();
  // The newest position seen is adopted: what was dropped is reported, nothing is repeated.
  assert.deepEqual(resets, [{ room: "lobby", epoch: "e1", offset: MAX_HELD + 2 }]);
  assert.deepEqual(offsets(), []);
  socket().receive(publication("lobby", "e1", MAX_HELD + 3));
  assert.deepEqual(offsets(), [MAX_HELD + 3]);
  assert.deepEqual(socket().take(), []);
});

test("an overflow during a recovery resets to the newest position seen", async () => {
  const { socket, offsets, resets } = await lobby({ offset: 0 });
  socket().receive(publication("lobby", "e1", 3)); // a gap: join again
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 0 })]);
  for (let offset = 4; offset <= MAX_HELD + 5; offset++) {
    socket().receive(publication("lobby", "e1", offset));
  }
  socket().receive(publication("lobby", "e1", 1)); // the next one: still delivered at once
  socket().receive(joined(2, "e1", 2));
  await settle();
  assert.deepEqual(resets, [{ room: "lobby", epoch: "e1", offset: MAX_HELD + 5 }]);
  assert.deepEqual(offsets(), [1]);
  assert.deepEqual(socket().take(), []);
});

test("as many held publications as the bound are all delivered", async () => {
  const { socket, offsets, resets } = await lobby({ offset: 0 });
  socket().receive(publication("lobby", "e1", 2)); // a gap: join again
  assert.deepEqual(socket().take(), [join(2, "lobby", { epoch: "e1", offset: 0 })]);
  for (let offset = MAX_HELD + 1; offset >= 3; offset--) {
    socket().receive(publication("lobby", "e1", offset));
  }
  socket().receive(publication("lobby", "e1", 1));
  socket().receive(joined(2, "e1", 1));
  await settle();
  assert.deepEqual(resets, []);
  assert.equal(offsets().length, MAX_HELD + 1);
  assert.ok(offsets().every((offset, index) => offset === index + 1));
});

test("room names are checked as the server does: a TypeError otherwise", async () => {
  const { rpc, socket, open } = setup();
  for (const room of ["", "x".repeat(201), 42, null, undefined, ["lobby"], "\ud800"]) {
    assert.throws(() => rpc.subscribe(room, () => {}), TypeError, String(room));
    await assert.rejects(rpc.publish(room, 1), TypeError, String(room));
  }
  assert.throws(() => rpc.subscribe("", () => {}), /invalid room name "": a non-empty string/);
  assert.throws(() => rpc.subscribe(7, () => {}), /a room name must be a string, got number/);
  assert.throws(() => rpc.subscribe("lobby"), /a callback is needed, got undefined/);
  assert.throws(() => rpc.subscribe("lobby", () => {}, { onReset: 1 }), /onReset must be/);
  // 200 characters, counted as the server does: code points, not UTF-16 units.
  rpc.subscribe("x".repeat(200), () => {});
  rpc.subscribe("😀".repeat(200), () => {});
  await open();
  assert.deepEqual(
    socket()
      .take()
      .map((message) => message.params.room.length),
    [200, 400],
  );
});

test("publish() sends $/room/publish and resolves with the position", async () => {
  const { rpc, socket } = setup();
  const queued = rpc.publish("lobby", { text: "hi" }); // queued like a call
  rpc.connect();
  socket().open();
  const refused = rpc.publish("lobby", "again");
  assert.deepEqual(socket().take(), [
    request("$/room/publish", { room: "lobby", data: { text: "hi" } }, 1),
    request("$/room/publish", { room: "lobby", data: "again" }, 2),
  ]);
  socket().receive(result(1, { epoch: "e1", offset: 12 }));
  socket().receive(error(2, -32601, "Method not found", "$/room/publish"));
  assert.deepEqual(await queued, { epoch: "e1", offset: 12 });
  await assert.rejects(refused, (exc) => exc instanceof RemoteError && exc.code === -32601);
});

test("publish() refuses what JSON cannot carry, bytes first", async () => {
  const { rpc, socket, open } = setup();
  await open();
  for (const data of [new Uint8Array([1]), new ArrayBuffer(2), new DataView(new ArrayBuffer(1))]) {
    await assert.rejects(rpc.publish("lobby", data), {
      name: "TypeError",
      message: /^cannot publish binary data: a client publishes JSON values/,
    });
  }
  await assert.rejects(rpc.publish("lobby", undefined), /cannot publish undefined/);
  await assert.rejects(
    rpc.publish("lobby", () => {}),
    /cannot publish function/,
  );
  await assert.rejects(rpc.publish("lobby", NaN), /NaN is not a JSON number/);
  assert.deepEqual(socket().sent, []);
});

test("a refused join goes to ready and the error event; the next connection retries", async () => {
  const { rpc, socket, clock, open, events } = setup();
  await open();
  const { callback, offsets } = recorder();
  const subscription = rpc.subscribe("lobby", callback);
  socket().take();
  const refusal = { type: "BrokerUnavailable", message: "no broker" };
  socket().receive(error(1, -32000, "no broker", refusal));
  await assert.rejects(subscription.ready, (exc) => exc instanceof RemoteError);
  assert.deepEqual(errors(events), ["cannot join room lobby: no broker"]);
  const { error: reported } = events.at(-1);
  assert.ok(reported instanceof RPCError);
  assert.ok(reported.cause instanceof RemoteError);
  socket().receive(publication("lobby", "e1", 1)); // not joined: ignored
  assert.deepEqual(socket().take(), []);

  socket().serverClose(1012);
  clock.advance(1000);
  socket().open();
  assert.deepEqual(socket().take(), [join(2, "lobby")]);
  socket().receive(joined(2, "e1", 1));
  await settle();
  socket().receive(publication("lobby", "e1", 2));
  assert.deepEqual(offsets(), [2]);
});

test("an answer to $/room/join that is not a position is a refused join", async () => {
  const { rpc, socket, open, events } = setup();
  await open();
  const subscription = rpc.subscribe("lobby", () => {});
  socket().take();
  socket().receive(result(1, { epoch: "e1" }));
  await assert.rejects(
    subscription.ready,
    /^RPCError: invalid answer to \$\/room\/join: {"epoch":"e1"}$/,
  );
  assert.deepEqual(errors(events), [
    'cannot join room lobby: invalid answer to $/room/join: {"epoch":"e1"}',
  ]);
});

test("invalid room messages and throwing callbacks are error events", async () => {
  const { rpc, socket, offsets, events } = await lobby();
  rpc.subscribe("lobby", (data) => {
    throw new Error(`callback failed on ${data}`);
  });
  socket().receive(notification("$/room/message", { room: "lobby", offset: 1 }));
  socket().receive(notification("$/room/message", { room: "lobby", epoch: "e1", offset: 0 }));
  socket().receive(publication("lobby", "e1", 1));
  assert.deepEqual(offsets(), [1]); // the other subscriber still got it
  assert.deepEqual(errors(events), [
    'invalid $/room/message from the server: {"room":"lobby","offset":1}',
    'invalid $/room/message from the server: {"room":"lobby","epoch":"e1","offset":0}',
    "callback failed on #1",
  ]);
});

test("a refused leave is an error event; a leave lost with the connection is not", async () => {
  const { rpc, socket, events, subscription } = await lobby();
  subscription.unsubscribe();
  assert.deepEqual(socket().take(), [request("$/room/leave", { room: "lobby" }, 2)]);
  socket().receive(error(2, -32603, "Internal error", "oops"));
  await settle();
  assert.deepEqual(errors(events), ["cannot leave room lobby: Internal error"]);
  rpc.subscribe("other", () => {}).unsubscribe();
  assert.equal(socket().take().at(-1).method, "$/room/leave");
  socket().serverClose(1012);
  await settle();
  assert.deepEqual(
    events.map((event) => event.type),
    ["connect", "error", "disconnect", "reconnecting"],
  );
});

test("unsubscribe() before the join's answer: ready rejects, the answer is ignored", async () => {
  const { rpc, socket, open, events } = setup();
  await open();
  const { callback, offsets } = recorder();
  const subscription = rpc.subscribe("lobby", callback);
  socket().receive(publication("lobby", "e1", 2));
  subscription.unsubscribe();
  await assert.rejects(subscription.ready, { name: "AbortError" });
  assert.deepEqual(socket().take(), [
    join(1, "lobby"),
    request("$/room/leave", { room: "lobby" }, 2),
  ]);
  socket().receive(joined(1, "e1", 1));
  socket().receive(publication("lobby", "e1", 3));
  socket().receive(result(2, null));
  await settle();
  assert.deepEqual(offsets(), []);
  assert.deepEqual(errors(events), []);
});

test("a callback may unsubscribe: it gets nothing more, even held publications", async () => {
  const { rpc, socket, clock, offsets } = await lobby({ offset: 0 });
  const seen = [];
  const subscription = rpc.subscribe("lobby", (data, meta) => {
    seen.push(meta.offset);
    subscription.unsubscribe();
  });
  socket().serverClose(1012);
  clock.advance(1000);
  socket().open();
  socket().take();
  for (const offset of [2, 3, 1]) {
    socket().receive(publication("lobby", "e1", offset));
  }
  assert.deepEqual(seen, [1]);
  assert.deepEqual(offsets(), [1, 2, 3]); // the other subscription goes on
});

test("close() ends the subscriptions, even when reconnecting; later ones are refused", async () => {
  const { rpc, socket, clock, open } = setup();
  await open();
  const { callback, offsets } = recorder();
  const first = rpc.subscribe("lobby", callback);
  socket().take();
  socket().serverClose(1012);
  const second = rpc.subscribe("news", () => {}); // waits for the connection
  rpc.close();
  await assert.rejects(first.ready, ClientClosed);
  await assert.rejects(second.ready, ClientClosed);
  assert.throws(() => rpc.subscribe("lobby", () => {}), ClientClosed);
  first.unsubscribe(); // harmless
  clock.advance(1e9);
  assert.deepEqual(socket().sent, []);
  assert.deepEqual(offsets(), []);
});

test("close() while open ends the subscriptions without a leave", async () => {
  const { rpc, socket, subscription, offsets } = await lobby();
  rpc.close();
  assert.deepEqual(socket().take(), []);
  socket().receive(publication("lobby", "e1", 1));
  subscription.unsubscribe();
  assert.deepEqual(offsets(), []);
  assert.deepEqual((await subscription.ready).offset, 0); // it had joined
});
