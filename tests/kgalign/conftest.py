"""Fixtures of the kgalign tests: a scripted OpenAI-compatible HTTP server on 127.0.0.1 and a tiny
synthetic OpenEA dataset."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class ScriptedServer:
    """``answer(prompt) -> text`` decides each reply; ``fail_first[prompt_substring] = n`` makes the first
    ``n`` requests whose prompt contains the substring fail with HTTP 500; ``slow[substring] = seconds``
    delays the first reply of such prompts."""

    def __init__(self, answer):
        self.answer = answer
        self.fail_first: dict[str, int] = {}
        self.slow: dict[str, float] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.path.endswith("/chat/completions"):
                    self.send_response(404)
                    self.end_headers()
                    return
                prompt = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append({"path": self.path, "body": body})
                    fail = next((k for k, n in server.fail_first.items() if k in prompt and n > 0), None)
                    if fail is not None:
                        server.fail_first[fail] -= 1
                    delay = next((k for k in server.slow if k in prompt), None)
                    seconds = server.slow.pop(delay) if delay is not None else 0.0
                if fail is not None:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"injected failure")
                    return
                if seconds:
                    time.sleep(seconds)
                text = server.answer(prompt)
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                                      "usage": {"prompt_tokens": len(prompt.split()),
                                                "completion_tokens": 1}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server():
    servers = []

    def make(answer):
        s = ScriptedServer(answer)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def tiny_openea(tmp_path):
    """Two copies of a 12-entity graph (a ring with chords); KG2 uses other URIs and names with a suffix.
    Links: 4 train, 2 valid, 6 test (fold 1)."""
    n = 12
    edges = [(i, (i + 1) % n) for i in range(n)] + [(i, (i + 5) % n) for i in range(0, n, 3)]
    d = tmp_path / "tiny"
    (d / "721_5fold" / "1").mkdir(parents=True)
    u1 = [f"http://a.org/resource/Entity_{i}" for i in range(n)]
    u2 = [f"http://b.org/resource/Entity_{i}_b" for i in range(n)]
    (d / "rel_triples_1").write_text("".join(f"{u1[h]}\thttp://a.org/p/next\t{u1[t]}\n" for h, t in edges))
    (d / "rel_triples_2").write_text("".join(f"{u2[h]}\thttp://b.org/p/follows\t{u2[t]}\n" for h, t in edges))
    (d / "attr_triples_1").write_text("".join(f"{u1[i]}\thttp://a.org/p/code\tC{i}\n" for i in range(n)))
    (d / "ent_links").write_text("".join(f"{u1[i]}\t{u2[i]}\n" for i in range(n)))
    order = [3, 7, 0, 10, 5, 1, 2, 4, 6, 8, 9, 11]
    f = d / "721_5fold" / "1"
    (f / "train_links").write_text("".join(f"{u1[i]}\t{u2[i]}\n" for i in order[:4]))
    (f / "valid_links").write_text("".join(f"{u1[i]}\t{u2[i]}\n" for i in order[4:6]))
    (f / "test_links").write_text("".join(f"{u1[i]}\t{u2[i]}\n" for i in order[6:]))
    return d
