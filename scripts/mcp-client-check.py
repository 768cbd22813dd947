#!/usr/bin/env python3
"""Drives `orchestrator serve` with the official Python MCP SDK: handshake, tool list,
every tool, and (with two servers) a live `notifications/claude/channel` push.

usage: scripts/mcp-client-check.py [path/to/orchestrator]   (needs `pip install mcp`)
Exits non-zero with a message on the first failed check.
"""
import asyncio, json, os, sys, tempfile

import anyio
from pydantic import BaseModel
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.session import NotificationBinding

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/orchestrator")


class ChannelParams(BaseModel):
    content: str
    meta: dict | None = None


def check(cond, what):
    if not cond:
        sys.exit(f"mcp-client-check: FAILED: {what}")
    print(f"ok  {what}")


def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def main():
    root = tempfile.mkdtemp(prefix="orch-mcp-")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": root, "ORCHESTRATOR_PROJECT_ROOT": root}
    pushed = []

    async def on_channel(p: ChannelParams):
        pushed.append(p)

    a_params = StdioServerParameters(command=BIN, args=["serve"], env=dict(env, CLAUDE_CODE_SESSION_ID="pyclient-aaaa", ORCHESTRATOR_CHANNEL="on"))
    b_params = StdioServerParameters(command=BIN, args=["serve"], env=dict(env, CLAUDE_CODE_SESSION_ID="pyclient-bbbb"))
    binding = NotificationBinding(method="notifications/claude/channel", params_type=ChannelParams, handler=on_channel)
    async with stdio_client(a_params) as (ar, aw), stdio_client(b_params) as (br, bw):
        async with ClientSession(ar, aw, notification_bindings=[binding]) as a, ClientSession(br, bw) as b:
            init = await a.initialize()
            await b.initialize()
            check(init.server_info.name == "orchestrator", "server name is orchestrator")
            check(init.protocol_version <= "2025-11-25", f"protocol {init.protocol_version} <= 2025-11-25")
            exp = (init.capabilities.experimental or {})
            check("claude/channel" in exp, "declares experimental claude/channel")
            tools = {t.name: t for t in (await a.list_tools()).tools}
            want = {"whoami", "roster", "update_session_task", "set_name"}
            check(want <= set(tools), f"tools include {sorted(want)}")
            for t in tools.values():
                check("session_id" in t.input_schema.get("properties", {}), f"{t.name} accepts session_id")
            who = json.loads(text(await a.call_tool("whoami", {})))
            check(who["session_id"] == "pyclient-aaaa", "whoami names the spawned session")
            r = await a.call_tool("update_session_task", {"task": "port the lexer"})
            check(not r.is_error, "update_session_task succeeds")
            r = await a.call_tool("set_name", {"name": "lexer"})
            check(not r.is_error, "set_name succeeds")
            r = await a.call_tool("set_name", {"name": "no spaces allowed"})
            check(r.is_error, "set_name rejects a bad name with a tool error")
            ro = text(await b.call_tool("roster", {}))
            check("SA-pyclient" in ro and "port the lexer" in ro and "1 sibling session" in ro,
                  "B's roster shows A with its task")
            if "send_message" in tools:
                r = await b.call_tool("send_message", {"to": "@lexer", "body": "hold off on lexer.rs"})
                check(not r.is_error, f"send_message succeeds: {text(r)}")
                with anyio.fail_after(10):
                    while not pushed:
                        await anyio.sleep(0.05)
                p = pushed[0]
                check("hold off on lexer.rs" in p.content, "channel push carries the message")
                check(all(isinstance(v, str) for v in (p.meta or {}).values()), "channel meta values are strings")
                check((p.meta or {}).get("from_id8") == "pyclient", "meta names the sender")
    print("mcp-client-check: all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
