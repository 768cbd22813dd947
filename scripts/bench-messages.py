#!/usr/bin/env python3
"""Message latency benchmarks over N messages (p50/p99):

  push mode (default): session A sends N messages (MCP tool call) to session B; B's
    client receives each as `notifications/claude/channel`. Times send-start → push.
    Needs the Python MCP SDK (`pip install mcp`).
  --doorbell: session A (`orchestrator serve`, spoken to as raw JSON-RPC) sends N messages
    to session B, whose doorbell is a fake messaging socket (a Unix listener here). Each
    ring is answered as Claude Code would: B's UserPromptSubmit hook runs with the ring as
    its prompt, and the message is in context once that hook's answer carries it. Times
    send-start → ring received → in context, one message at a time (no coalescing).
    Needs nothing beyond Python 3.

usage: scripts/bench-messages.py [--doorbell] [path/to/orchestrator] [N]
"""
import asyncio, json, os, queue, socket, subprocess, sys, tempfile, threading, time

ARGS = [a for a in sys.argv[1:] if a != "--doorbell"]
DOORBELL = "--doorbell" in sys.argv[1:]
BIN = os.path.abspath(ARGS[0] if ARGS else "target/release/orchestrator")
N = int(ARGS[1]) if len(ARGS) > 1 else 1000


def pct(lat, p):
    return lat[min(len(lat) - 1, int(len(lat) * p))]


def doorbell():
    root = tempfile.mkdtemp(prefix="orch-bellbench-")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": root, "ORCHESTRATOR_PROJECT_ROOT": root}
    bell = os.path.join(root, "bell.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(bell)
    srv.listen(64)
    rings = queue.Queue()

    def listen():
        while True:
            conn, _ = srv.accept()
            data = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            conn.close()
            for line in data.decode().splitlines():
                rings.put((time.perf_counter(), json.loads(line)))

    threading.Thread(target=listen, daemon=True).start()
    # B: a live agent process (a sleeper named by CLAUDE_PID) whose hooks see the doorbell.
    agent = subprocess.Popen(["sleep", "3600"])
    benv = dict(env, CLAUDE_PID=str(agent.pid), CLAUDE_CODE_MESSAGING_SOCKET=bell)
    rid = "benchrcv-bbbb"

    def hook(event, extra):
        payload = dict({"session_id": rid, "transcript_path": "/dev/null", "cwd": "."}, **extra)
        r = subprocess.run([BIN, "hook", event], input=json.dumps(payload), env=benv,
                           capture_output=True, text=True)
        if r.returncode != 0 or r.stderr:
            sys.exit(f"hook {event} failed: {r.stderr}")
        return r.stdout

    hook("SessionStart", {"source": "startup"})
    a = subprocess.Popen([BIN, "serve"], env=dict(env, CLAUDE_CODE_SESSION_ID="benchsnd-aaaa"),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, bufsize=1)
    next_id = [0]

    def call(method, params):
        next_id[0] += 1
        a.stdin.write(json.dumps({"jsonrpc": "2.0", "id": next_id[0], "method": method, "params": params}) + "\n")
        a.stdin.flush()
        while True:
            v = json.loads(a.stdout.readline())
            if v.get("id") == next_id[0]:
                return v

    call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "bench", "version": "0"}})
    a.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
    a.stdin.flush()
    to_ring, to_ctx, hook_ms = [], [], []
    try:
        for k in range(N):
            t0 = time.perf_counter()
            r = call("tools/call", {"name": "send_message",
                                     "arguments": {"to": "@SA-benchrcv", "body": f"bench {k}"}})
            text = r["result"]["content"][0]["text"]
            mid = int(text.split("#")[1].split(" ")[0])
            t1, ring = rings.get(timeout=10)
            content = ring["message"]["content"]
            if f"#{mid} " not in content:
                sys.exit(f"ring for the wrong message: {content}")
            h0 = time.perf_counter()
            out = hook("UserPromptSubmit", {"prompt": content})
            t2 = time.perf_counter()
            if f"message #{mid} " not in out:
                sys.exit(f"message #{mid} not in the hook's answer: {out[:300]}")
            hook("Stop", {})
            to_ring.append((t1 - t0) * 1000)
            to_ctx.append((t2 - t0) * 1000)
            hook_ms.append((t2 - h0) * 1000)
    finally:
        a.kill()
        agent.kill()
    for name, lat in (("send → ring", to_ring), ("ring → in context (hook run)", hook_ms),
                      ("send → in context", to_ctx)):
        lat.sort()
        print(f"{name:30} over {len(lat)} messages: p50 {pct(lat, 0.5):7.2f} ms  "
              f"p99 {pct(lat, 0.99):7.2f} ms  max {lat[-1]:7.2f} ms")


async def push():
    import anyio
    from pydantic import BaseModel
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.session import NotificationBinding

    class ChannelParams(BaseModel):
        content: str
        meta: dict | None = None

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
    print(f"push time to context over {len(lat)} messages: p50 {pct(lat, 0.5):.2f} ms  "
          f"p99 {pct(lat, 0.99):.2f} ms  max {lat[-1]:.2f} ms")


if __name__ == "__main__":
    if DOORBELL:
        doorbell()
    else:
        asyncio.run(push())
