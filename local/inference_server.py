"""Local stand-in for the SageMaker endpoint: /ping and /invocations over HTTP on 127.0.0.1.

It calls exactly the functions SageMaker calls (training/inference.py), so what the demo and the
end-to-end tests see is what the endpoint will answer.

    .venv/bin/python -m local.inference_server --model-dir build/demo/model    # any free port; --port N

Given a `follow` (local.lifecycle.EndpointFollower: the local registry's endpoint in local AWS), it also
answers `POST /reload` (local only, not part of SageMaker's contract): it loads the model the endpoint now
serves and swaps it in, so `returnguard models promote --local` changes what the demo scores with. When
the endpoint runs an experiment (`returnguard models experiment start --local`) it loads the challenger
variant's model too and answers it under CHALLENGER_PATH (`/variants/challenger/invocations`), as
SageMaker answers `TargetVariant=challenger`: the local score function's RG_CHALLENGER_URL.
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local.options import Parser, port_in_use, port_number
from training.inference import InferenceError, LoadedModel, input_fn, model_fn, output_fn, predict_fn

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit
CHALLENGER_PATH = "/variants/challenger"  # the challenger variant's model (an experiment), under /invocations


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the demo prints its own progress
        pass

    def _send(self, status: int, body: dict[str, Any] | str) -> None:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path == "/ping":
            model = self.server.model
            models = {"order": model.version, **{lane: m.version for lane, m in model.lanes.items()}}
            challenger = self.server.challenger.version if self.server.challenger else None
            self._send(
                200,
                {
                    "status": "healthy",
                    "model_version": model.version,
                    "models": models,
                    "challenger": challenger,
                },
            )
        else:
            self._send(404, {"error": {"code": "not_found", "message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        if self.path == "/reload" and self.server.follow is not None:
            try:
                champion = model_fn(str(self.server.follow.model_dir()))
                challenger_dir = self.server.follow.challenger_dir()
                challenger = model_fn(str(challenger_dir)) if challenger_dir else None
            except Exception as error:  # the old models keep serving
                self._send(500, {"error": {"code": "reload_failed", "message": str(error)[:300]}})
                return
            self.server.model, self.server.challenger = champion, challenger
            self._send(
                200,
                {
                    "status": "reloaded",
                    "model_version": champion.version,
                    "challenger": challenger.version if challenger else None,
                },
            )
            return
        if self.path == "/invocations":
            model = self.server.model
        elif self.path == f"{CHALLENGER_PATH}/invocations" and self.server.challenger is not None:
            model = self.server.challenger
        elif self.path == f"{CHALLENGER_PATH}/invocations":  # as SageMaker answers an unknown TargetVariant
            self._send(
                400, {"error": {"code": "no_challenger", "message": "no experiment runs: no challenger"}}
            )
            return
        else:
            self._send(404, {"error": {"code": "not_found", "message": f"no route {self.path}"}})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(400, {"error": {"code": "bad_length", "message": "invalid Content-Length"}})
            return
        if length > MAX_BODY_BYTES:
            self.rfile.read(length)
            self._send(
                413, {"error": {"code": "body_too_large", "message": f"body over {MAX_BODY_BYTES} bytes"}}
            )
            return
        body = self.rfile.read(length)
        try:
            data = input_fn(body, self.headers.get("Content-Type", ""), model.file_features)
            text, _ = output_fn(predict_fn(data, model), self.headers.get("Accept", "application/json"))
            self._send(200, text)
        except InferenceError as error:
            self._send(error.status, error.body())
        except UnicodeDecodeError:
            self._send(400, {"error": {"code": "bad_encoding", "message": "body must be UTF-8"}})
        except Exception:  # never a traceback on the wire
            self._send(
                500, {"error": {"code": "internal_error", "message": "the model failed on this input"}}
            )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: LoadedModel, follow: Any = None):
        super().__init__(address, _Handler)
        self.model = model
        self.challenger: LoadedModel | None = None  # the followed endpoint's challenger variant's model
        # has model_dir() and challenger_dir(): the folders of the models the followed endpoint serves
        self.follow = follow


@dataclass
class ServerHandle:
    url: str
    port: int
    model_version: str
    _server: _Server
    _thread: threading.Thread

    @property
    def current_version(self) -> str:
        return self._server.model.version

    def follow(self, follower: Any) -> None:
        """From now on, POST /reload loads what `follower.model_dir()` names."""
        self._server.follow = follower

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 0, follow: Any = None) -> ServerHandle:
    """Load the model and serve it in a background thread; port 0 picks a free port."""
    server = _Server((host, port), model_fn(str(model_dir)), follow)
    thread = threading.Thread(target=server.serve_forever, name="inference-server", daemon=True)
    thread.start()
    bound = server.server_address[1]
    return ServerHandle(f"http://{host}:{bound}", int(bound), server.model.version, server, thread)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m local.inference_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", default="build/demo/model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=0, help="default: any free port (printed)")
    args = parser.parse_args(argv)
    if port_in_use(args.port, args.host):
        parser.error(f"argument --port: {args.port} is already in use on {args.host} (choose another, or 0)")
    if not (Path(args.model_dir) / "config.json").is_file():
        parser.error(f"argument --model-dir: no model in {args.model_dir} (run `make demo` first)")
    handle = serve(args.model_dir, args.host, args.port)
    print(f"serving model {handle.model_version} on {handle.url} (Ctrl-C to stop)", flush=True)
    try:
        handle._thread.join()
    except KeyboardInterrupt:
        handle.stop()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
