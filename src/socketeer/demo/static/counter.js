// The counter demo's page: one WebSocket to the server, reopened with backoff when it drops.
// Messages are JSON: the page sends {"action": "minus" | "plus"}; the server sends
// {"type": "value", "value": N} and {"type": "users", "count": N}.

const SOCKET_PATH = "/ws/counter";
const FIRST_DELAY = 500; // milliseconds before the first reconnection attempt
const MAX_DELAY = 10_000; // most milliseconds between attempts

const valueOutput = document.getElementById("value");
const usersText = document.getElementById("users");
const statusText = document.getElementById("status");
const buttons = document.querySelectorAll("button[data-action]");

let socket = null;
let attempts = 0; // failed attempts since the last open connection
let retryTimer = null;

function showState(state) {
  document.body.dataset.state = statusText.dataset.state = state;
  statusText.textContent = state === "connected" ? "connected" : "connecting…";
  for (const button of buttons) {
    button.disabled = state !== "connected";
  }
}

function socketURL() {
  const url = new URL(SOCKET_PATH, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

function connect() {
  retryTimer = null;
  showState("connecting");
  socket = new WebSocket(socketURL());
  socket.addEventListener("open", () => {
    attempts = 0;
    showState("connected");
  });
  socket.addEventListener("message", (event) => receive(event.data));
  socket.addEventListener("close", () => {
    socket = null;
    usersText.textContent = "\u00a0";
    showState("connecting");
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  // Exponential, capped, with jitter: tabs that lost the same server don't return at once.
  const ceiling = Math.min(FIRST_DELAY * 2 ** attempts, MAX_DELAY);
  attempts += 1;
  retryTimer = setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
}

function reconnectNow() {
  if (retryTimer !== null) {
    clearTimeout(retryTimer);
    connect();
  }
}

function receive(data) {
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return;
  }
  if (message.type === "value" && Number.isFinite(message.value)) {
    valueOutput.textContent = String(message.value);
  } else if (message.type === "users" && Number.isInteger(message.count)) {
    const noun = message.count === 1 ? "user" : "users";
    usersText.textContent = `${message.count} ${noun} online`;
  }
}

function send(action) {
  if (socket !== null && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ action }));
  }
}

for (const button of buttons) {
  button.addEventListener("click", () => send(button.dataset.action));
}
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "+" || event.key === "=") send("plus");
  else if (event.key === "-") send("minus");
});
// Back online, or back to a tab the browser put to sleep: don't wait for the timer.
window.addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});

connect();
