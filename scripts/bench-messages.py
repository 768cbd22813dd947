#!/usr/bin/env python3
"""Time to context over the live push path: session A sends N messages (MCP tool call)
to session B; B's client receives each as `notifications/claude/channel`. Prints p50/p99
of send-start → push-received. Needs the Python MCP SDK (`pip install mcp`).

usage: scripts/bench-messages.py [path/to/orchestrator] [N]
"""
import asyncio, os, sys, tempfile, time

import anyio
from pydantic import BaseModel
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.session import NotificationBinding

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/orchestrator")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


class ChannelParams(BaseModel):
    content: str
    meta: dict | None = None


async def main():
    root = tempfile.mkdtemp(prefix="orch-msgbench-")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": root, "ORCHESTRATOR_PROJECT_ROOT": root}
    arrived = {}
    got = anyio.Event()

    async def on_push(p: ChannelParams):
        arrived[int(p.meta["message_id"])] = time.perf_counter()
        if len(arrived) >= N:
            got.set()

    a = StdioServerParameters(command=BIN, args=["serve"], env=dict(env, CLAUDE_CODE_SESSION_ID="benchsnd-aaaa"))
    b = StdioServerParameters(command=BIN, args=["serve"], env=dict(env, CLAUDE_CODE_SESSION_ID="benchrcv-bbbb",
                                                                    ORCHESTRATOR_CHANNEL="on"))
    binding = NotificationBinding(method="notifications/claude/channel", params_type=ChannelParams, handler=on_push)
    async with stdio_client(a) as (ar, aw), stdio_client(b) as (br, bw):
        async with ClientSession(ar, aw) as sa, ClientSession(br, bw, notification_bindings=[binding]) as sb:
            await sa.initialize()
            await sb.initialize()
            sent = {}
            for k in range(N):
                t0 = time.perf_counter()
                r = await sa.call_tool("send_message", {"to": "@SA-benchrcv", "body": f"bench {k}"})
                text = "".join(getattr(c, "text", "") for c in r.content)
                mid = int(text.split("#")[1].split(" ")[0])
                sent[mid] = t0
            with anyio.fail_after(30):
                await got.wait()
    lat = sorted((arrived[m] - t0) * 1000 for m, t0 in sent.items() if m in arrived)
    q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
    print(f"push time to context over {len(lat)} messages: p50 {q(0.5):.2f} ms  p99 {q(0.99):.2f} ms  max {lat[-1]:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
