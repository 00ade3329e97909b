"""A fake Discord on 127.0.0.1 for protocol-level tests: the REST routes and a JSON gateway.

One guild with one text channel, a few members and roles. The REST side records every
request (`Recorded`), answers as Discord does for the routes the bot uses, and refuses what
Discord refuses (content over 2000 characters, command payloads over the documented limits,
an interaction callback after 3 s or twice), listing each refusal in `rejections`. The gateway
speaks plain JSON (no zlib: discord.py only inflates binary frames), sends HELLO, answers
heartbeats, and after IDENTIFY sends READY and GUILD_CREATE, then whatever the test scripts.
Like Discord, it blanks the text of messages that do not mention the bot when the
connection did not ask for the Message Content intent, and closes with 4014 when it asks for
a privileged intent the "developer portal" did not enable.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

API = "/api/v10"
HOST = "127.0.0.1"
# Discord's limits (https://discord.com/developers/docs): seconds to answer an interaction,
# characters in a message, and the application-command limits.
INTERACTION_DEADLINE = 3.0
CONTENT_LIMIT = 2000
COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
COMMAND_TOTAL_CHARS = 4000
MAX_OPTIONS = 25
MAX_COMMANDS = 100  # of each type, per application (or guild)
MAX_CHOICES = 25
# Gateway intents (bits) and permissions (bits) as Discord numbers them.
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | MESSAGE_CONTENT  # members, presences, content
ADMINISTRATOR = 1 << 3
MEMBER_PERMISSIONS = (  # what @everyone may do in a typical server
    (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16) | (1 << 31) | (1 << 35) | (1 << 38)
)
ALL_PERMISSIONS = (1 << 50) - 1
EPHEMERAL = 1 << 6
LOADING = 1 << 7
# How long a test waits for the bot before failing (s): far above what any step takes, even
# on a machine busy with other work; only a broken bot reaches it.
WAIT_SECONDS = 60.0
# Interaction callback types that put a message on screen (4: new message, 7: edit it).
MESSAGE_CALLBACKS = (4, 7)


@dataclass(frozen=True)
class Recorded:
    """One REST request as the bot sent it, and what the fake answered."""

    method: str
    path: str  # below /api/v10, e.g. "/channels/2001/messages"
    query: dict[str, str]
    body: Any  # the JSON body (or a multipart request's payload_json); None without one
    at: float  # time.monotonic() at arrival
    status: int
    response: Any  # the JSON the fake answered with (None for 204)

    def message_payload(self) -> dict[str, Any] | None:
        """The message this request creates or edits, or None when it sends no message.

        Channel messages, webhook (interaction follow-up) sends and edits, and interaction
        callbacks that show a message (types 4 and 7).
        """
        if not isinstance(self.body, dict):
            return None
        if self.path.startswith("/interactions/"):
            shows = self.body.get("type") in MESSAGE_CALLBACKS
            return (self.body.get("data") or {}) if shows else None
        sends = self.method == "POST" and re.fullmatch(r"/channels/\d+/messages", self.path)
        webhook = self.path.startswith("/webhooks/") and self.method in ("POST", "PATCH")
        return self.body if sends or webhook else None


@dataclass(frozen=True)
class Identify:
    """One IDENTIFY the bot sent on the gateway."""

    token: str
    intents: int
    at: float


@dataclass(frozen=True)
class User:
    """A member of the fake guild."""

    id: int
    name: str
    roles: tuple[int, ...] = ()
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        """The user object."""
        return {"id": str(self.id), "username": self.name, "global_name": self.name,
                "discriminator": "0", "avatar": None, "bot": self.bot, "public_flags": 0}

    def member(self, permissions: int | None = None) -> dict[str, Any]:
        """The guild member object (with resolved permissions, as interactions carry them)."""
        data: dict[str, Any] = {
            "user": self.payload(), "roles": [str(role) for role in self.roles],
            "joined_at": "2023-01-01T00:00:00+00:00", "deaf": False, "mute": False, "flags": 0,
        }
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class Interaction:
    """An interaction the fake dispatched, and the message it answers with (once known)."""

    id: int
    token: str
    payload: dict[str, Any]
    at: float
    channel_id: int
    original_id: int | None = None  # the message its callback showed (or the pressed one)
    answered: bool = False


@dataclass
class FakeDiscord:
    """The fake: `await start()`, point discord.py at `api_base` / `gateway_url`, script it.

    Knobs: `token` (others get 401 on REST and 4004 on the gateway), `portal_intents` (the
    privileged intents enabled in the developer portal), `refuse_threads` (thread creation
    answers 403 Missing Permissions), `close_code` (the next IDENTIFY is answered by closing
    the connection with it, e.g. 4004 for a token reset since login).
    """

    token: str = "fake-bot.token.for-tests"
    portal_intents: int = PRIVILEGED_INTENTS
    refuse_threads: bool = False
    close_code: int | None = None
    # the world
    app_id: int = 1000
    guild_id: int = 2000
    channel_id: int = 2001
    admin_role_id: int = 2002
    owner: User = User(3000, "owner")
    asker: User = User(3001, "asker")
    other: User = User(3002, "other")
    admin: User = User(3003, "admin", roles=(2002,))
    # what happened
    requests: list[Recorded] = field(default_factory=list)
    identifies: list[Identify] = field(default_factory=list)
    interactions: dict[int, Interaction] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)  # synced, by name
    rejections: list[str] = field(default_factory=list)  # what Discord would have refused
    unknown_routes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bot_user = User(self.app_id, "articlebot", bot=True)
        self.port = 0
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._intents = 0  # of the current gateway session
        self._changed = asyncio.Condition()
        self.ready = asyncio.Event()  # set once READY and GUILD_CREATE are sent

    # --- lifecycle
    @property
    def api_base(self) -> str:
        """The value for discord.http.Route.BASE."""
        return f"http://{HOST}:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        """The gateway address (given to the bot by GET /gateway/bot)."""
        return f"ws://{HOST}:{self.port}/"

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", API + "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the gateway connection and stop listening."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    # --- waiting (on events, never on the clock)
    async def wait_for(
        self, predicate: Callable[[Recorded], bool], limit: float = WAIT_SECONDS
    ) -> Recorded:
        """The first recorded request matching `predicate`, waiting for it to arrive.

        Raises TimeoutError when none arrives within `limit` seconds.
        """
        async with asyncio.timeout(limit), self._changed:
            while True:
                for request in self.requests:
                    if predicate(request):
                        return request
                await self._changed.wait()

    async def wait_identifies(self, count: int, limit: float = WAIT_SECONDS) -> list[Identify]:
        """The IDENTIFYs once there are `count` of them; TimeoutError after `limit` s."""
        async with asyncio.timeout(limit), self._changed:
            await self._changed.wait_for(lambda: len(self.identifies) >= count)
        return self.identifies

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- scripting the gateway
    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH (op 0) on the open connection."""
        if self._ws is None or self._ws.closed:
            raise RuntimeError("the bot is not connected to the gateway")
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def slash(
        self, user: User, name: str, options: list[dict[str, Any]] | None = None
    ) -> Interaction:
        """Someone runs a slash command in the channel (options as Discord sends them)."""
        data = {"id": str(self.commands[name]["id"]), "name": name, "type": 1,
                "options": options or []}
        return await self._interact(user, 2, data)

    async def press(self, user: User, message_id: int, custom_id: str) -> Interaction:
        """Someone presses a button on one of the bot's messages."""
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(user, 3, data, self.messages[message_id])

    async def say(
        self, user: User, content: str, channel_id: int | None = None, *,
        mention_bot: bool = False,
    ) -> int:
        """Someone posts a message; returns its id. Its text reaches the bot only when the
        session has the Message Content intent or the message mentions the bot."""
        channel_id = channel_id or self.channel_id
        if mention_bot:
            content = f"<@{self.app_id}> {content}"
        message = self._message(channel_id, user, {"content": content})
        message["member"] = user.member()
        if mention_bot:
            message["mentions"] = [{**self.bot_user.payload(), "member": self.bot_user.member()}]
        await self._dispatch_message(message)
        return int(message["id"])

    async def _interact(
        self, user: User, kind: int, data: dict[str, Any], message: dict[str, Any] | None = None
    ) -> Interaction:
        interaction_id = next(self._ids)
        token = f"interaction-token-{interaction_id}"
        payload: dict[str, Any] = {
            "id": str(interaction_id), "application_id": str(self.app_id), "type": kind,
            "data": data, "guild_id": str(self.guild_id), "channel_id": str(self.channel_id),
            "channel": self._text_channel(), "member": user.member(self.permissions(user)),
            "token": token, "version": 1, "locale": "en-US", "guild_locale": "en-US",
            "app_permissions": str(MEMBER_PERMISSIONS), "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)}, "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        # Registered and timed before it is sent: the answer may arrive before send returns.
        record = Interaction(interaction_id, token, payload, time.monotonic(), self.channel_id,
                             original_id=int(message["id"]) if message is not None else None)
        self.interactions[interaction_id] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    async def _dispatch_message(self, message: dict[str, Any]) -> None:
        """MESSAGE_CREATE, with the text withheld as Discord withholds it."""
        delivered = dict(message)
        mentioned = any(int(user["id"]) == self.app_id for user in message.get("mentions", []))
        own = int(message["author"]["id"]) == self.app_id
        if not (self._intents & MESSAGE_CONTENT or mentioned or own):
            delivered.update(content="", embeds=[], attachments=[], components=[])
        await self.dispatch("MESSAGE_CREATE", delivered)

    # --- the guild
    def permissions(self, user: User) -> int:
        """A member's permissions in the guild: the owner and administrators have all."""
        if user.id == self.owner.id:
            return ALL_PERMISSIONS
        value = MEMBER_PERMISSIONS
        for role in self._roles():
            if int(role["id"]) in user.roles:
                value |= int(role["permissions"])
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def _roles(self) -> list[dict[str, Any]]:
        def role(role_id: int, name: str, permissions: int, position: int) -> dict[str, Any]:
            return {"id": str(role_id), "name": name, "permissions": str(permissions),
                    "position": position, "color": 0, "hoist": False, "managed": False,
                    "mentionable": False, "flags": 0}
        # @everyone's id is the guild's; the admin role grants nothing by itself (the bot's
        # ARTICLEBOT_ADMIN_ROLE_IDS makes it an admin role).
        return [role(self.guild_id, "@everyone", MEMBER_PERMISSIONS, 0),
                role(self.admin_role_id, "news-admins", 0, 1)]

    def _text_channel(self) -> dict[str, Any]:
        return {"id": str(self.channel_id), "type": 0, "guild_id": str(self.guild_id),
                "name": "news", "position": 0, "permission_overwrites": [], "nsfw": False,
                "topic": None, "last_message_id": None, "rate_limit_per_user": 0,
                "parent_id": None, "flags": 0}

    def _guild(self) -> dict[str, Any]:
        people = (self.bot_user, self.owner, self.asker, self.other, self.admin)
        return {
            "id": str(self.guild_id), "name": "Fake News Room", "icon": None,
            "owner_id": str(self.owner.id), "roles": self._roles(), "emojis": [],
            "stickers": [], "features": [], "channels": [self._text_channel()], "threads": [],
            "members": [person.member() for person in people], "member_count": len(people),
            "voice_states": [], "presences": [], "large": False, "unavailable": False,
            "joined_at": "2023-01-01T00:00:00+00:00", "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
            "premium_tier": 0, "preferred_locale": "en-US", "nsfw_level": 0,
            "system_channel_id": None, "afk_channel_id": None, "afk_timeout": 300,
            "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
        }

    def _message(
        self, channel_id: int, author: User, body: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        """A message object as Discord returns and dispatches it."""
        message_id = next(self._ids)
        message = {
            "id": str(message_id), "channel_id": str(channel_id), "guild_id": str(self.guild_id),
            "author": author.payload(), "content": body.get("content") or "",
            "timestamp": datetime.now(UTC).isoformat(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
            "embeds": body.get("embeds") or [], "components": body.get("components") or [],
            "pinned": False, "type": 0, "flags": body.get("flags") or 0, **extra,
        }
        reference = body.get("message_reference")
        if reference:
            message["type"] = 19  # a reply
            message["message_reference"] = reference
            message["referenced_message"] = self.messages.get(int(reference["message_id"]))
        self.messages[message_id] = message
        return message

    def _edit(self, message_id: int, body: dict[str, Any]) -> dict[str, Any]:
        message = self.messages[message_id]
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = body[key] or ([] if key != "content" else "")
        if "flags" in body:
            message["flags"] = body["flags"] or 0
        message["flags"] &= ~LOADING
        message["edited_timestamp"] = datetime.now(UTC).isoformat()
        return message

    # --- REST
    async def _rest(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        path = "/" + request.match_info["path"]
        body = await _read_body(request)
        status, answer = await self._route(request, path, body)
        self.requests.append(
            Recorded(request.method, path, dict(request.query), body, at, status, answer)
        )
        await self._notify()
        if status == 204:
            return web.Response(status=204)
        # Exactly this content type: discord.py parses JSON only when it matches verbatim.
        return web.Response(body=json.dumps(answer).encode(), status=status,
                            headers={"Content-Type": "application/json"})

    async def _route(self, request: web.Request, path: str, body: Any) -> tuple[int, Any]:
        webhook = path.startswith(("/webhooks/", "/interactions/"))  # the token is in the path
        if not webhook and request.headers.get("Authorization") != f"Bot {self.token}":
            return 401, {"message": "401: Unauthorized", "code": 0}
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return await handler(body, *match.groups())
        self.unknown_routes.append(f"{request.method} {path}")
        return 404, {"message": "404: Not Found", "code": 0}

    def _routes(self) -> list[tuple[str, str, Callable[..., Awaitable[tuple[int, Any]]]]]:
        return [
            ("GET", r"/gateway/bot", self._get_gateway),
            ("GET", r"/users/@me", self._get_me),
            ("GET", r"/(?:oauth2/)?applications/@me", self._get_application),
            ("PUT", r"/applications/\d+(?:/guilds/\d+)?/commands", self._put_commands),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("POST", r"/webhooks/\d+/([^/]+)", self._followup),
            ("PATCH", r"/webhooks/\d+/([^/]+)/messages/(@original|\d+)", self._edit_webhook),
            ("GET", r"/webhooks/\d+/([^/]+)/messages/(@original|\d+)", self._get_webhook),
            ("POST", r"/channels/(\d+)/messages", self._post_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._patch_message),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._start_thread),
            ("POST", r"/channels/(\d+)/typing", self._typing),
        ]

    async def _get_gateway(self, _body: Any) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}

    async def _get_me(self, _body: Any) -> tuple[int, Any]:
        return 200, {**self.bot_user.payload(), "verified": True, "mfa_enabled": False,
                     "flags": 0}

    async def _get_application(self, _body: Any) -> tuple[int, Any]:
        return 200, {"id": str(self.app_id), "name": "articlebot", "icon": None,
                     "description": "", "bot_public": False, "bot_require_code_grant": False,
                     "owner": self.owner.payload(), "verify_key": "0" * 64, "flags": 0,
                     "team": None, "summary": "", "rpc_origins": [],
                     "interactions_endpoint_url": None}

    async def _put_commands(self, body: Any) -> tuple[int, Any]:
        problems = [problem for command in body for problem in command_problems(command)]
        if len(body) > MAX_COMMANDS:
            problems.append(f"{len(body)} commands (limit {MAX_COMMANDS})")
        if problems:
            return self._reject(400, "PUT commands: " + "; ".join(problems), 50035)
        synced = []
        for command in body:
            saved = {**command, "id": str(next(self._ids)), "application_id": str(self.app_id),
                     "version": "1"}
            self.commands[command["name"]] = saved
            synced.append(saved)
        return 200, synced

    async def _callback(self, body: Any, interaction_id: str, token: str) -> tuple[int, Any]:
        interaction = self.interactions.get(int(interaction_id))
        if interaction is None or interaction.token != token:
            return self._reject(404, f"callback for unknown interaction {interaction_id}", 10062)
        late = time.monotonic() - interaction.at
        if late > INTERACTION_DEADLINE:
            return self._reject(404, f"interaction {interaction_id} answered after {late:.1f}s",
                                10062)
        if interaction.answered:
            return self._reject(400, f"interaction {interaction_id} acknowledged twice", 40060)
        kind, data = body["type"], body.get("data") or {}
        if problem := content_problem(data):
            return self._reject(400, problem, 50035)
        interaction.answered = True
        resource: dict[str, Any] = {"type": kind}
        if kind == 4 or kind == 5:  # a new message: the answer, or "thinking…" for a defer
            flags = (data.get("flags") or 0) | (LOADING if kind == 5 else 0)
            message = self._message(interaction.channel_id, self.bot_user,
                                    {**data, "flags": flags}, webhook_id=str(self.app_id))
            interaction.original_id = int(message["id"])
            resource["message"] = message
        elif kind == 7 and interaction.original_id is not None:
            resource["message"] = self._edit(interaction.original_id, data)
        return 200, {"interaction": {
            "id": interaction_id, "type": interaction.payload["type"],
            "response_message_id": str(interaction.original_id or ""),
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool((data.get("flags") or 0) & EPHEMERAL),
        }, "resource": resource}

    def _interaction(self, token: str) -> Interaction | None:
        return next((i for i in self.interactions.values() if i.token == token), None)

    async def _followup(self, body: Any, token: str) -> tuple[int, Any]:
        interaction = self._interaction(token)
        if interaction is None or not interaction.answered:
            return self._reject(404, "follow-up to an interaction never acknowledged", 10015)
        if problem := content_problem(body):
            return self._reject(400, problem, 50035)
        message = self._message(interaction.channel_id, self.bot_user, body,
                                webhook_id=str(self.app_id))
        return 200, message

    def _original(self, token: str, which: str) -> int | None:
        interaction = self._interaction(token)
        if which != "@original":
            return int(which) if int(which) in self.messages else None
        return interaction.original_id if interaction is not None else None

    async def _edit_webhook(self, body: Any, token: str, which: str) -> tuple[int, Any]:
        message_id = self._original(token, which)
        if message_id is None:
            return self._reject(404, f"edit of unknown interaction message {which}", 10008)
        if problem := content_problem(body):
            return self._reject(400, problem, 50035)
        return 200, self._edit(message_id, body)

    async def _get_webhook(self, _body: Any, token: str, which: str) -> tuple[int, Any]:
        message_id = self._original(token, which)
        if message_id is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        return 200, self.messages[message_id]

    async def _post_message(self, body: Any, channel_id: str) -> tuple[int, Any]:
        if problem := content_problem(body):
            return self._reject(400, problem, 50035)
        message = self._message(int(channel_id), self.bot_user, body)
        await self._dispatch_message(message)  # Discord echoes the bot's own messages
        return 200, message

    async def _patch_message(self, body: Any, _channel_id: str, message_id: str) -> tuple[int, Any]:
        if problem := content_problem(body):
            return self._reject(400, problem, 50035)
        return 200, self._edit(int(message_id), body)

    async def _start_thread(self, body: Any, channel_id: str, message_id: str) -> tuple[int, Any]:
        if self.refuse_threads:
            return 403, {"message": "Missing Permissions", "code": 50013}
        # A thread started from a message has the message's id.
        thread = {
            "id": message_id, "type": 11, "guild_id": str(self.guild_id), "parent_id": channel_id,
            "owner_id": str(self.app_id), "name": body["name"], "flags": 0,
            "rate_limit_per_user": 0, "message_count": 0, "member_count": 1,
            "total_message_sent": 0, "last_message_id": None,
            "thread_metadata": {"archived": False, "locked": False,
                                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                                "archive_timestamp": datetime.now(UTC).isoformat()},
        }
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return 201, thread

    async def _typing(self, _body: Any, _channel_id: str) -> tuple[int, Any]:
        return 204, None

    def _reject(self, status: int, problem: str, code: int) -> tuple[int, Any]:
        self.rejections.append(problem)
        return status, {"message": problem, "code": code}

    # --- the gateway
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws, self._seq = ws, 0
        self.ready.clear()
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45_000}}))
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                if payload["op"] == 1:  # heartbeat
                    await ws.send_str(json.dumps({"op": 11}))
                elif payload["op"] == 2:
                    await self._identify(ws, payload["d"])
                elif payload["op"] == 6:  # resume: sessions are not kept, start afresh
                    await ws.send_str(json.dumps({"op": 9, "d": False}))
        finally:
            await self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        intents = int(data.get("intents", 0))
        self.identifies.append(Identify(data["token"], intents, time.monotonic()))
        await self._notify()
        if data["token"] != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.close_code is not None:
            code, self.close_code = self.close_code, None
            await ws.close(code=code, message=b"Closed by the test.")
            return
        if intents & PRIVILEGED_INTENTS & ~self.portal_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self._intents = intents
        await self.dispatch("READY", {
            "v": 10, "user": self.bot_user.payload(), "session_type": "normal",
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": f"session-{len(self.identifies)}", "shard": [0, 1],
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
        })
        await self.dispatch("GUILD_CREATE", self._guild())
        self.ready.set()


async def _read_body(request: web.Request) -> Any:
    """The request's JSON, also from a multipart request's payload_json part."""
    if not request.can_read_body:
        return None
    if request.content_type == "multipart/form-data":
        form = await request.post()
        text = form.get("payload_json")
        return json.loads(text) if isinstance(text, str) else None
    return await request.json()


def content_problem(payload: dict[str, Any]) -> str | None:
    """Why Discord would refuse a message payload's text, or None."""
    content = payload.get("content") or ""
    if len(content) > CONTENT_LIMIT:
        return f"content of {len(content)} characters (limit {CONTENT_LIMIT})"
    for embed in payload.get("embeds") or []:
        size = len(embed.get("title") or "") + len(embed.get("description") or "")
        size += len((embed.get("footer") or {}).get("text") or "")
        size += len((embed.get("author") or {}).get("name") or "")
        fields = embed.get("fields") or []
        size += sum(len(item.get("name", "")) + len(item.get("value", "")) for item in fields)
        if len(embed.get("description") or "") > 4096 or len(fields) > 25:
            return "embed description over 4096 characters or over 25 fields"
        if size > 6000:
            return f"embed of {size} characters (limit 6000)"
    return None


def command_problems(command: dict[str, Any]) -> list[str]:
    """What Discord's documented limits refuse in one command of a bulk overwrite."""
    problems: list[str] = []
    name = command.get("name", "")
    slash = command.get("type", 1) == 1

    def check_name(what: str, value: str) -> None:
        if not COMMAND_NAME.fullmatch(value) or (slash and value != value.lower()):
            problems.append(f"{what}: name {value!r} is not 1-32 lowercase word characters")

    def check_description(what: str, value: str) -> None:
        if slash and not 1 <= len(value) <= 100:
            problems.append(f"{what}: description of {len(value)} characters (1-100)")

    def check_options(what: str, options: list[dict[str, Any]]) -> None:
        if len(options) > MAX_OPTIONS:
            problems.append(f"{what}: {len(options)} options (limit {MAX_OPTIONS})")
        required_seen_after_optional = False
        optional_seen = False
        for option in options:
            where = f"{what} {option.get('name')}"
            check_name(where, option.get("name", ""))
            check_description(where, option.get("description", ""))
            if option.get("required"):
                required_seen_after_optional |= optional_seen
            else:
                optional_seen = True
            choices = option.get("choices") or []
            if len(choices) > MAX_CHOICES:
                problems.append(f"{where}: {len(choices)} choices (limit {MAX_CHOICES})")
            for choice in choices:
                if not 1 <= len(choice.get("name", "")) <= 100:
                    problems.append(f"{where}: choice name {choice.get('name')!r} (1-100)")
                if isinstance(choice.get("value"), str) and len(choice["value"]) > 100:
                    problems.append(f"{where}: choice value over 100 characters")
            check_options(where, option.get("options") or [])
        if required_seen_after_optional:
            problems.append(f"{what}: a required option comes after an optional one")

    check_name(name, name)
    check_description(name, command.get("description", ""))
    check_options(name, command.get("options") or [])
    total = command_chars(command)
    if total > COMMAND_TOTAL_CHARS:
        problems.append(f"{name}: {total} characters in all (limit {COMMAND_TOTAL_CHARS})")
    return problems


def command_chars(item: dict[str, Any]) -> int:
    """Characters Discord counts towards a command's 4000: names, descriptions, choice names
    and values, of the command and every option and choice in it."""
    total = len(item.get("name", "")) + len(item.get("description", ""))
    if "value" in item:
        total += len(str(item["value"]))
    for child in (item.get("options") or []) + (item.get("choices") or []):
        total += command_chars(child)
    return total
