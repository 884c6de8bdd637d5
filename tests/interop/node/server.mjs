// A WebSocket server made with the ws package, for socketeer's interoperability tests.
//
// usage: node server.mjs [--no-deflate | --deflate-options JSON] [--subprotocol NAME]...
//                        [--max-payload BYTES]
//
// Listens on 127.0.0.1, on a port the OS picks, and prints it first. What it does with a
// connection depends on the request's path:
//
//   /                         echoes every message, text as text and binary as binary
//   /fragment                 echoes every message as a fragmented message of three frames;
//                             a text message is cut by bytes, so a frame may end in the
//                             middle of a UTF-8 sequence (RFC 6455 allows it)
//   /close?code=N&reason=R    closes at once with that code and reason (no code: an empty
//                             close frame)
//   /ping?text=T              pings with that payload, then echoes like /
//
// Everything it sees is printed on stdout, one JSON object a line:
//
//   {"event": "listening", "port": N}
//   {"event": "open", "id": N, "path": "/", "protocol": "...", "extensions": "..."}
//   {"event": "message", "id": N, "binary": false, "size": N}
//   {"event": "pong", "id": N, "text": "..."}
//   {"event": "close", "id": N, "code": N, "reason": "..."}
//   {"event": "error", "id": N, "message": "...", "code": "..."}
//
// With permessage-deflate on (the default), every message is compressed, however small;
// --deflate-options sets ws' perMessageDeflate options (e.g. {"threshold": 1024,
// "serverNoContextTakeover": true}) over that.
// The server exits when its stdin closes.

import { WebSocketServer } from "ws";

function parseArgs(argv) {
  const args = { deflate: { threshold: 0 }, subprotocols: [], maxPayload: 100 * 1024 * 1024 };
  for (let i = 0; i < argv.length; i++) {
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

const args = parseArgs(process.argv.slice(2));

const server = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: args.deflate,
  maxPayload: args.maxPayload,
  // The first of our subprotocols that the client offers; none when there is no match.
  handleProtocols: (offered) => args.subprotocols.find((name) => offered.has(name)) ?? false,
});

let lastId = 0;

server.on("listening", () => emit({ event: "listening", port: server.address().port }));

server.on("connection", (ws, request) => {
  const id = ++lastId;
  const url = new URL(request.url, "http://localhost");
  const { protocol, extensions } = ws;
  emit({ event: "open", id, path: url.pathname, protocol, extensions });

  ws.on("close", (code, reason) => emit({ event: "close", id, code, reason: reason.toString() }));
  ws.on("error", (err) => emit({ event: "error", id, message: err.message, code: err.code }));
  ws.on("pong", (data) => emit({ event: "pong", id, text: data.toString() }));

  if (url.pathname === "/close") {
    const code = url.searchParams.get("code");
    if (code === null) ws.close();
    else ws.close(Number(code), url.searchParams.get("reason") ?? "");
    return;
  }
  if (url.pathname === "/ping") {
    ws.ping(url.searchParams.get("text") ?? "");
  }
  ws.on("message", (data, isBinary) => {
    emit({ event: "message", id, binary: isBinary, size: data.length });
    if (url.pathname === "/fragment") {
      const cuts = [0, Math.ceil(data.length / 3), Math.ceil((2 * data.length) / 3), data.length];
      for (let i = 0; i < 3; i++) {
        ws.send(data.subarray(cuts[i], cuts[i + 1]), { binary: isBinary, fin: i === 2 });
      }
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
});

process.stdin.resume();
process.stdin.on("end", () => {
  for (const ws of server.clients) ws.terminate();
  server.close(() => process.exit(0));
});
