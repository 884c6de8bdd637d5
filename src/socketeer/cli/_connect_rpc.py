"""``socketeer connect --rpc``: a session that speaks socketeer's JSON-RPC
(``docs/rpc-protocol.md``) through :func:`socketeer.rpc.connect` and its
:class:`~socketeer.rpc.Peer`.

Lines are commands: ``call METHOD ARGS...``, ``notify METHOD ARGS...``, ``join ROOM``,
``leave ROOM`` (the ``$/room/join`` and ``$/room/leave`` requests of ``docs/pubsub.md``),
``/ping``, ``/close``, ``/help``. Results print as JSON; the publications of the rooms
joined print as ``[ROOM #OFFSET] DATA``. Tab completes the method names that the server's
``rpc.discover`` lists, fetched once connected.

Commands run one after the other, in the order of the lines: a call waits for its answer
(at most the peer's ``call_timeout``, 30 s) before the next line runs.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from ..exceptions import CallTimeout, ConnectionLost, RemoteError
from ..pubsub import JOIN_METHOD, LEAVE_METHOD, MESSAGE_METHOD
from ..rpc import Peer
from ..rpc.messages import DISCOVER_METHOD
from ..typedefs import JSONValue
from ._connect_session import CommandFailed, Console, Session, describe

__all__ = ["RPCSession", "parse_arguments", "complete", "COMMANDS"]

COMMANDS = ("call", "notify", "join", "leave", "/ping", "/close", "/help")
"""The commands, for completion."""


def parse_arguments(text: str) -> list[JSONValue]:
    """The arguments of ``call`` and ``notify``: words separated by spaces, each parsed as
    JSON, or else taken as a string.

    A JSON value may contain spaces (``{"a": 1}``, ``"two words"``); a word that does not
    start a JSON value ending at a space or at the end is a string (``hello``, ``12ab``).
    """
    decoder = json.JSONDecoder()
    values: list[JSONValue] = []
    position, length = 0, len(text)
    while True:
        while position < length and text[position].isspace():
            position += 1
        if position == length:
            return values
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            end = -1
        if end < 0 or (end < length and not text[end].isspace()):
            end = position
            while end < length and not text[end].isspace():
                end += 1
            value = text[position:end]
        values.append(value)
        position = end


def complete(before_cursor: str, methods: Sequence[str]) -> tuple[int, Sequence[str]]:
    """Completion in an RPC session: the command, then the method of ``call`` and
    ``notify`` among ``methods``."""
    start = before_cursor.rfind(" ") + 1
    previous = before_cursor[:start].split()
    if not previous:
        return start, COMMANDS
    if len(previous) == 1 and previous[0].lstrip("/") in ("call", "notify"):
        return start, methods
    return start, ()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RPCSession(Session):
    """A session over an RPC peer; see the module's description.

    Listening to ``$/room/message`` uses the peer's private ``_listen``: the public
    :meth:`~socketeer.rpc.Peer.on` refuses reserved names, and the RPC layer has no public
    way yet for a client to receive the publications of its rooms.
    """

    HELP = (
        "commands:",
        "  call METHOD [ARG...]    call METHOD, print its result as JSON",
        "  notify METHOD [ARG...]  send a notification (never answered)",
        "  join ROOM               join ROOM; its publications print as [ROOM #OFFSET] DATA",
        "  leave ROOM              leave ROOM",
        "  /ping [TEXT]            send a WebSocket ping, print the round-trip time",
        "  /close [CODE [REASON]]  close the connection (code 1000 by default)",
        "  /help                   this help",
        'each ARG is parsed as JSON (1, 2.5, "two words", [1, 2], {"k": "v"}, true, null);',
        "an ARG that is not JSON is taken as a plain string: hello is the same as",
        '"hello". Tab completes the commands, and the methods the server lists.',
    )

    def __init__(self, peer: Peer, console: Console, *, wait: float, verbose: bool) -> None:
        super().__init__(peer.connection, console, wait=wait, verbose=verbose)
        self.peer = peer
        self.methods: list[str] = []
        """The methods the server listed in answer to ``rpc.discover``."""
        peer._listen(MESSAGE_METHOD, self._on_room_message)
        self.spawn(self._discover())

    async def _discover(self) -> None:
        try:
            methods = await self.peer.call(DISCOVER_METHOD)
        except (RemoteError, CallTimeout, ConnectionLost):
            return  # no completion of method names, that is all
        if isinstance(methods, list):
            names = (m.get("name") for m in methods if isinstance(m, dict))
            self.methods = sorted(name for name in names if isinstance(name, str))

    async def receive(self) -> None:
        await self.peer.wait_closed()  # the peer reads, until the connection closes

    def complete(self, before_cursor: str) -> tuple[int, Sequence[str]]:
        return complete(before_cursor, self.methods)

    def _on_room_message(
        self,
        room: object = None,
        epoch: object = None,
        offset: object = None,
        data: Any = None,
        encoding: object = None,
        **others: object,
    ) -> None:
        self.last_activity = self.loop.time()
        if encoding == "base64" and isinstance(data, str):
            try:
                text = describe(base64.b64decode(data, validate=True), self.console.binary_limit)
            except binascii.Error:
                text = _json(data)
        elif isinstance(data, str):
            text = data
        else:
            text = _json(data)
        self.console.message(f"[{room} #{offset}] {text}")

    async def handle(self, line: str) -> bool:
        command, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        name = command.lstrip("/")
        if not command:
            return True
        if name in ("call", "notify"):
            await self.call(name, argument)
        elif name in ("join", "leave"):
            await self.room(name, argument)
        elif name == "ping":
            await self.ping(argument)
        elif name == "close":
            return await self.close_command(argument)
        elif name == "help":
            self.help()
        else:
            raise CommandFailed(f"unknown command {command}: /help lists the commands")
        return True

    async def call(self, command: str, argument: str) -> None:
        """``call METHOD ARGS...`` or ``notify METHOD ARGS...``."""
        method, _, rest = argument.partition(" ")
        if not method:
            raise CommandFailed(f"{command}: expected a method, e.g. {command} add 1 2")
        params = parse_arguments(rest)
        try:
            if command == "notify":
                await self.peer.notify(method, *params)
                return
            result = await self.peer.call_with(method, params or None)
        except RemoteError as exc:
            raise CommandFailed(f"{method} failed: {exc}") from None
        except CallTimeout as exc:
            raise CommandFailed(str(exc)) from None
        except ConnectionLost:
            self.console.error(f"{method}: the connection closed before the answer came")
            return
        except (TypeError, ValueError) as exc:
            raise CommandFailed(f"{command} {method}: {exc}") from None
        self.last_activity = self.loop.time()
        self.console.message(_json(result))

    async def room(self, command: str, argument: str) -> None:
        """``join ROOM`` or ``leave ROOM``."""
        if not argument:
            raise CommandFailed(f"{command}: expected a room, e.g. {command} lobby")
        method = JOIN_METHOD if command == "join" else LEAVE_METHOD
        try:
            result = await self.peer.call_with(method, {"room": argument})
        except (RemoteError, CallTimeout) as exc:
            raise CommandFailed(f"{command} {argument}: {exc}") from None
        except ConnectionLost:
            return
        if command == "leave":
            self.console.info(f"left {argument}")
        elif isinstance(result, dict):
            position = f"epoch {result.get('epoch')}, offset {result.get('offset')}"
            self.console.info(f"joined {argument} ({position})")
        else:
            self.console.info(f"joined {argument}")
