// The rooms demo's page: a chat in the room "chat" (src/socketeer/demo/rooms.py).
//
// The page subscribes to the room and shows each message once, in offset order; the client
// rejoins after a reconnection and recovers what was missed, by itself. It sends with the
// server's method chat.say (clients may not publish), fetches the recent messages with
// chat.recent once subscribed (and again when messages were lost: onReset), and learns how
// many people are here from chat.enter and the chat.people notification.
//
// The outage button simulates a lost network: the WebSocket constructor given to the client
// (it takes one, for tests) closes the open socket and fails new ones until the outage ends.

import { RPC } from "/socketeer.js";

const ROOM = "chat";
const MAX_SHOWN = 50; // messages kept on the page, as many as the server keeps
const OUTAGE = 3000; // milliseconds
const NAME_KEY = "socketeer-demo-name";

const list = document.getElementById("messages");
const form = document.getElementById("say");
const nameInput = form.elements.namedItem("name");
const textInput = form.elements.namedItem("text");
const sendButton = form.querySelector("button");
const errorText = document.getElementById("error");
const peopleText = document.getElementById("people");
const statusText = document.getElementById("status");

// The simulated outage

let outageUntil = 0;
let socket = null; // the last real socket opened

/** A socket that fails at once, as when the network is down. */
class FailingSocket extends EventTarget {
  constructor() {
    super();
    setTimeout(() => {
      this.dispatchEvent(new Event("error"));
      this.dispatchEvent(new CloseEvent("close", { code: 1006, wasClean: false }));
    }, 0);
  }

  send() {}

  close() {}
}

/** The WebSocket constructor of the client: real sockets, except during an outage. */
function OutageWebSocket(url, protocols) {
  if (Date.now() < outageUntil) {
    return new FailingSocket();
  }
  socket = new WebSocket(url, protocols);
  return socket;
}

function simulateOutage() {
  outageUntil = Date.now() + OUTAGE;
  socket?.close(4001, "simulated outage"); // the client reconnects, with backoff
}

// The messages shown: those of one epoch, by offset

let epoch = null;
const shown = new Map(); // offset → <li>

function clear() {
  shown.clear();
  list.replaceChildren();
}

/** Show a message at its place, unless shown already; keep the newest MAX_SHOWN. */
function add(offset, data) {
  if (shown.has(offset) || typeof data?.name !== "string" || typeof data?.text !== "string") {
    return;
  }
  const item = document.createElement("li");
  item.dataset.offset = String(offset);
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = data.name;
  const time = document.createElement("time");
  if (Number.isFinite(data.time)) {
    const date = new Date(data.time);
    time.dateTime = date.toISOString();
    time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  item.append(name, " ", data.text, " ", time);

  let next = null; // the first message shown after this one
  for (const [other, element] of shown) {
    if (other > offset && (next === null || other < Number(next.dataset.offset))) {
      next = element;
    }
  }
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.insertBefore(item, next);
  shown.set(offset, item);
  while (shown.size > MAX_SHOWN) {
    const oldest = Math.min(...shown.keys());
    shown.get(oldest).remove();
    shown.delete(oldest);
  }
  if (atBottom && next === null) {
    list.scrollTop = list.scrollHeight;
  }
}

/** Start over if the room's epoch changed: offsets of another epoch don't compare. */
function useEpoch(newEpoch) {
  if (newEpoch !== epoch) {
    clear();
    epoch = newEpoch;
  }
}

// The client

const rpc = new RPC("/rpc/rooms", { initialDelay: 500, maxDelay: 2000, WebSocket: OutageWebSocket });

const subscription = rpc.subscribe(
  ROOM,
  (data, meta) => {
    useEpoch(meta.epoch);
    add(meta.offset, data);
  },
  {
    // Messages were lost (the history did not reach back far enough): fetch the recent ones.
    onReset: (position) => {
      useEpoch(position.epoch);
      loadRecent();
    },
  },
);

let recentWanted = false; // until the recent messages were fetched
let loading = false;

/** Fetch the recent messages and show those of the current epoch; on failure, retry later. */
async function loadRecent() {
  recentWanted = true;
  if (loading) {
    return;
  }
  loading = true;
  try {
    const recent = await rpc.call("chat.recent");
    recentWanted = false;
    for (const message of recent) {
      if (message.epoch === epoch) {
        add(message.offset, message.data);
      }
    }
  } catch (error) {
    console.warn(`chat.recent failed: ${error.message}`); // retried on the next connection
  } finally {
    loading = false;
  }
}

subscription.ready.then(
  (position) => {
    useEpoch(position.epoch);
    loadRecent();
  },
  (error) => console.warn(`cannot join ${ROOM}: ${error.message}`),
);

function showPeople(count) {
  if (Number.isInteger(count)) {
    peopleText.textContent = count === 1 ? "1 person here" : `${count} people here`;
  }
}

function showState(state) {
  statusText.dataset.state = state;
  statusText.textContent = {
    connected: "connected",
    connecting: "connecting…",
    reconnecting: "reconnecting…",
  }[state];
  sendButton.disabled = state !== "connected";
}

rpc.on("chat.people", showPeople);
rpc.addEventListener("connect", () => {
  showState("connected");
  rpc.call("chat.enter").then(showPeople, (error) => console.warn(error.message));
  if (recentWanted) {
    loadRecent();
  }
});
rpc.addEventListener("disconnect", () => {
  showState("reconnecting");
  peopleText.textContent = "\u00a0"; // until chat.enter answers again
});

// Saying something

try {
  nameInput.value = localStorage.getItem(NAME_KEY) ?? "";
} catch {
  // no storage: no remembered name
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = textInput.value;
  try {
    localStorage.setItem(NAME_KEY, nameInput.value);
  } catch {
    // no storage
  }
  try {
    await rpc.call("chat.say", nameInput.value, text);
    errorText.textContent = "";
    if (textInput.value === text) {
      textInput.value = "";
    }
  } catch (error) {
    errorText.textContent = error.message; // e.g. too long, too many, connection lost
  }
  textInput.focus();
});

document.getElementById("outage").addEventListener("click", simulateOutage);

showState("connecting");
rpc.connect();
