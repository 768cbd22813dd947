#!/usr/bin/env python3
"""Fake model APIs so Codex CLI and Gemini CLI run offline (scripts/check-other-clis).

    fake-model-apis.py PORT LOG

Gemini (`GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT`): streamGenerateContent answers the
first turn with a write_file call for $FAKE_FILE and, once it sees a functionResponse,
with "done". Codex (`model_providers.fake.base_url = "http://127.0.0.1:PORT/v1"`, wire_api
"responses"): the first turn is an apply_patch adding $FAKE_REL, then "done". Each request
is logged to LOG with how many `[orchestrator]` blocks and roster lines it carried.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = open(sys.argv[2], "a")
FILE = os.environ.get("FAKE_FILE", "/nonexistent/notes.txt")
REL = os.environ.get("FAKE_REL", "notes.txt")
PATCH = f"*** Begin Patch\n*** Add File: {REL}\n+from codex\n*** End Patch\n"


def sse(events):
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        text = raw.decode("utf-8", "replace")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        LOG.write(json.dumps({"path": self.path, "orchestrator_blocks": text.count("[orchestrator]"),
                              "roster_claude": text.count("(claude, subordinate)")}) + "\n")
        LOG.flush()
        if self.path.endswith("/responses"):
            items = body.get("input", []) if isinstance(body, dict) else []
            done = any(isinstance(i, dict) and str(i.get("type", "")).endswith("call_output") for i in items)
            item = ({"type": "message", "role": "assistant", "id": "m1",
                     "content": [{"type": "output_text", "text": "done"}]} if done else
                    {"type": "custom_tool_call", "name": "apply_patch", "input": PATCH, "call_id": "call_1"})
            usage = {"input_tokens": 1, "input_tokens_details": None, "output_tokens": 1,
                     "output_tokens_details": None, "total_tokens": 2}
            return self.reply("text/event-stream", sse([
                {"type": "response.created", "response": {"id": "r1"}},
                {"type": "response.output_item.done", "item": item},
                {"type": "response.completed", "response": {"id": "r1", "usage": usage}}]))
        if ":streamGenerateContent" in self.path:
            contents = body.get("contents", [])
            last = contents[-1] if contents else {}
            done = any("functionResponse" in p for p in last.get("parts", [])) or not body.get("tools")
            part = {"text": "done"} if done else {
                "functionCall": {"name": "write_file", "args": {"file_path": FILE, "content": "from gemini\n"}}}
            r = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                 "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}
            return self.reply("text/event-stream", b"data: " + json.dumps(r).encode() + b"\r\n\r\n")
        if ":countTokens" in self.path:
            return self.reply("application/json", json.dumps({"totalTokens": 1}).encode())
        if ":generateContent" in self.path:
            r = {"candidates": [{"content": {"role": "model", "parts": [{"text": "{}"}]}, "finishReason": "STOP"}]}
            return self.reply("application/json", json.dumps(r).encode())
        self.reply("application/json", b"{}")

    def do_GET(self):
        self.reply("application/json", b'{"models": [], "data": []}')

    def reply(self, ctype, data):
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
