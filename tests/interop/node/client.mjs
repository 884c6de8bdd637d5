// A scripted WebSocket client made with the ws package, for socketeer's interoperability
// tests.
//
// usage: node client.mjs URL [--no-deflate | --deflate-options JSON] [--subprotocol NAME]...
//                            [--max-payload BYTES]
//
// Reads commands on stdin, one JSON object a line, and runs them in order once the connection
// is open:
//
//   {"op": "send", "text": "..."}                          a text message
//   {"op": "send", "b64": "..."}                           a binary message
//   {"op": "send", "fragments": ["...", ...]}              a text message, one frame per item
//   {"op": "send", "fragments_b64": ["...", ...]}          a binary message, one frame per item
//   {"op": "ping", "text": "..."}                          a ping
//   {"op": "close", "code": N, "reason": "..."}            the closing handshake
//   {"op": "close"}                                        the same with an empty close frame
//
// With "binary": false, "b64" and "fragments_b64" send their bytes in a text message,
// unchecked: a frame may end inside a UTF-8 sequence, or the bytes may not be UTF-8 at all.
// With "fin": false, the last fragment is not final: the message stays unfinished.
//
// Everything it sees is printed on stdout, one JSON object a line:
//
//   {"event": "open", "protocol": "...", "extensions": "..."}
//   {"event": "message", "binary": B, "size": N, "sha256": "...", "text" or "b64": "..."}
//       (the content only for messages up to 64 KiB)
//   {"event": "pong", "text": "..."}
//   {"event": "close", "code": N, "reason": "..."}
//   {"event": "error", "message": "...", "code": "..."}
//
// With permessage-deflate on (the default), every message is compressed, however small;
// --deflate-options sets ws' perMessageDeflate options (e.g. {"threshold": 1024,
// "clientNoContextTakeover": true}) over that. The client exits once the connection is
// closed; when stdin closes first, it closes with 1000.

import { createHash } from "node:crypto";
import { createInterface } from "node:readline";
import { WebSocket } from "ws";

const MAX_PRINTED = 65536;

function parseArgs(argv) {
  const args = {
    url: argv[0],
    deflate: { threshold: 0 },
    subprotocols: [],
    maxPayload: 100 * 1024 * 1024,
  };
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === "--no-deflate") args.deflate = false;
    else if (argv[i] === "--deflate-options") Object.assign(args.deflate, JSON.parse(argv[++i]));
    else if (argv[i] === "--subprotocol") args.subprotocols.push(argv[++i]);
    else if (argv[i] === "--max-payload") args.maxPayload = Number(argv[++i]);
    else throw new Error(`unknown argument: ${argv[i]}`);
  }
  return args;
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function run(ws, command) {
  switch (command.op) {
    case "send": {
      const binary = command.binary ?? (command.b64 ?? command.fragments_b64) !== undefined;
      let parts = [command.text];
      if (command.b64 !== undefined) parts = [Buffer.from(command.b64, "base64")];
      else if (command.fragments !== undefined) parts = command.fragments;
      else if (command.fragments_b64 !== undefined) {
        parts = command.fragments_b64.map((part) => Buffer.from(part, "base64"));
      }
      const fin = command.fin ?? true;
      parts.forEach((part, i) => ws.send(part, { binary, fin: fin && i === parts.length - 1 }));
      break;
    }
    case "ping":
      ws.ping(command.text ?? "");
      break;
    case "close":
      if (command.code === undefined) ws.close();
      else ws.close(command.code, command.reason ?? "");
      break;
    default:
      throw new Error(`unknown command: ${JSON.stringify(command)}`);
  }
}

const args = parseArgs(process.argv.slice(2));
const ws = new WebSocket(args.url, args.subprotocols, {
  perMessageDeflate: args.deflate,
  maxPayload: args.maxPayload,
});

const pending = [];
let stdinEnded = false;

ws.on("open", () => {
  emit({ event: "open", protocol: ws.protocol, extensions: ws.extensions });
  for (const command of pending.splice(0)) run(ws, command);
  if (stdinEnded) ws.close(1000);
});
ws.on("message", (data, isBinary) => {
  const event = { event: "message", binary: isBinary, size: data.length };
  event.sha256 = createHash("sha256").update(data).digest("hex");
  if (data.length <= MAX_PRINTED) {
    if (isBinary) event.b64 = data.toString("base64");
    else event.text = data.toString();
  }
  emit(event);
});
ws.on("pong", (data) => emit({ event: "pong", text: data.toString() }));
ws.on("error", (err) => emit({ event: "error", message: err.message, code: err.code }));
ws.on("close", (code, reason) => {
  emit({ event: "close", code, reason: reason.toString() });
  process.exit(0);
});

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  if (ws.readyState === WebSocket.CONNECTING) pending.push(command);
  else if (ws.readyState === WebSocket.OPEN) run(ws, command);
});
lines.on("close", () => {
  stdinEnded = true;
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
});
