"""What the real-AIPerf acceptance tests share: the pinned aiperf's console script, an offline environment, a
loopback HTTP stub server and a tokenizer built locally (never downloaded)."""
import contextlib
import json
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

AIPERF = str(Path(sys.executable).with_name("aiperf"))  # the pinned aiperf's console script in this venv
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost",
               "no_proxy": "127.0.0.1,localhost", "COLUMNS": "200"}


@contextlib.contextmanager
def offline_env() -> Iterator[dict]:
    """The environment aiperf runs in: no proxies, no hub. Its temporary files (a memory-map directory per run, which
    it leaves behind) go to a short-lived directory of their own: short, because aiperf puts its ZeroMQ IPC sockets
    there and a socket path over 107 characters fails (a pytest tmp_path is too long)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    with tempfile.TemporaryDirectory(prefix="ncp-aiperf-") as tmp:
        yield {**env, **OFFLINE_ENV, "TMPDIR": tmp}


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler that answers JSON with a Content-Length (AIPerf keeps connections alive)."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status: int, body: dict) -> None:
        self.send_body(status, json.dumps(body).encode(), "application/json")

    def send_body(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port for the block; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_tokenizer(directory: Path, words: list[str]) -> Path:
    """A word-level tokenizer directory that transformers' AutoTokenizer loads with local_files_only.

    AIPerf builds synthetic prompts from the Shakespeare corpus shipped inside the aiperf wheel, so the vocabulary is
    trained on that corpus (~1.5 s) plus the stub's words: prompts decode to real words, the stub's output tokens
    count one per word.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    import aiperf.dataset.generator as generator

    corpus = Path(generator.__file__).parent / "assets" / "shakespeare.txt"
    files = [str(corpus)] if corpus.is_file() else []
    extra = directory / "words.txt"
    extra.write_text(" ".join(words * 10) + "\n")
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train(files + [str(extra)], trainers.WordLevelTrainer(vocab_size=60000, special_tokens=["[UNK]"]))
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "model_max_length": 1_000_000}))
    return directory
