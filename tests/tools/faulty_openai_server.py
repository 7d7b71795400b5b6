#!/usr/bin/env python3
"""A scripted OpenAI-compatible server for the endpoint backend's fault tests.

The first path segment picks the behaviour, so one process serves every fault:
  /ok/v1/...           a correct server: /models, streamed completions and chat (usage, [DONE])
  /flaky/v1/...        like ok, but every 4th generation request answers HTTP 500
  /malformed/v1/...    HTTP 200 text/event-stream whose payloads are not OpenAI chunks
  /error500/v1/...     generation requests answer HTTP 500 with an OpenAI error object
  /midstream500/v1/... two tokens, then an error object in the stream ({"error": ...}), then close
  /truncate/v1/...     two tokens, then the connection closes without [DONE]
  /hang/v1/...         accepts and reads every request, never answers (also /models)
  /hangstream/v1/...   /models answers; generation requests are never answered
  /auth/v1/...         like ok, but wants "Authorization: Bearer right-key" (else HTTP 401)
  /strict/v1/...       like ok, but refuses unknown fields (ignore_eos, min_tokens) with HTTP 400,
                       as OpenAI's own API does
  /metrics             a DCGM-exporter: DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ) of 2 GPUs
                       drawing 250 W each since the server started
Prints "listening on PORT" on stdout once ready.
usage: faulty_openai_server.py [--port P] [--tls-cert PEM --tls-key PEM] (HTTPS with that pair)
"""
import argparse
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

START = time.monotonic()
COUNTER = {"flaky": 0}
LOCK = threading.Lock()
MODEL = "fake-model"
WATTS_PER_GPU = 250.0


def chunk(api, text, finish=None):
    choice = {"index": 0, "finish_reason": finish}
    if api == "chat":
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    return {"id": "x", "object": "chunk", "model": MODEL, "choices": [choice]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def split(self):
        parts = self.path.split("/", 2)
        mode = parts[1] if len(parts) > 1 else ""
        rest = "/" + parts[2] if len(parts) > 2 else "/"
        return mode, rest

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def hang(self):
        time.sleep(3600)

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.write_chunk(("data: " + text + "\n\n").encode())

    def do_GET(self):
        if self.path == "/metrics":
            mj = (time.monotonic() - START) * WATTS_PER_GPU * 1000.0
            lines = ["# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter"]
            for gpu in (0, 1):
                lines.append('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="%d",UUID="GPU-%d"} %.0f'
                             % (gpu, gpu, mj))
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        mode, rest = self.split()
        if mode == "hang":
            return self.hang()
        if mode == "auth" and self.headers.get("Authorization") != "Bearer right-key":
            return self.send_json(401, {"error": {"message": "bad key", "code": 401}})
        if rest == "/v1/models":
            return self.send_json(200, {"object": "list", "data": [{"id": MODEL}]})
        self.send_json(404, {"error": {"message": "no route", "code": 404}})

    def do_POST(self):
        mode, rest = self.split()
        length = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        if mode in ("hang", "hangstream"):
            return self.hang()
        if mode == "auth" and self.headers.get("Authorization") != "Bearer right-key":
            return self.send_json(401, {"error": {"message": "bad key", "code": 401}})
        api = "chat" if rest.endswith("/chat/completions") else "completions"
        if mode == "strict" and ("ignore_eos" in req or "min_tokens" in req):
            return self.send_json(400, {"error": {"message": "Unrecognized request argument "
                                                             "supplied: ignore_eos", "code": 400}})
        if mode == "error500":
            return self.send_json(500, {"error": {"message": "out of memory", "code": 500}})
        if mode == "flaky":
            with LOCK:
                COUNTER["flaky"] += 1
                n = COUNTER["flaky"]
            if n % 4 == 0:
                return self.send_json(500, {"error": {"message": "flaky", "code": 500}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if mode == "malformed":
            self.event("this is not json")
            self.event("[DONE]")
            self.write_chunk(b"")
            return
        tokens = int(req.get("max_tokens", 16))
        if mode in ("midstream500", "truncate"):
            self.event(chunk(api, " the"))
            self.event(chunk(api, " of"))
            if mode == "midstream500":
                self.event({"error": {"message": "engine crashed", "code": 500}})
            self.close_connection = True
            return
        for i in range(tokens):
            time.sleep(0.002)
            self.event(chunk(api, " w%d" % i, "length" if i == tokens - 1 else None))
        prompt = req.get("prompt") or req["messages"][0]["content"]
        self.event({"id": "x", "object": "chunk", "model": MODEL, "choices": [],
                    "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": tokens,
                              "total_tokens": len(prompt.split()) + tokens}})
        self.event("[DONE]")
        self.write_chunk(b"")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # clients that hang up (the faults under test) are not news


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("listening on %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
