"""The endpoint picker in the twin (#24 Deliver 3): the real runner (sigs.k8s.io/gateway-api-inference-extension
cmd/epp at the version Dynamo 1.5's picker is built on, tools/e2e/bootstrap.sh component epp) started with the rendered
args and config against the local API server, and a request sent through its Envoy ext_proc gRPC interface as the
gateway would send it.

The gateway's side is this module's client: `envoy.service.ext_proc.v3.ExternalProcessor/Process`, a bidirectional
stream of ProcessingRequest / ProcessingResponse. Only the fields the exchange needs are written, by their protobuf
field numbers (github.com/envoyproxy/go-control-plane/envoy@v1.40.0, the module the runner builds against:
service/ext_proc/v3/external_processor.pb.go ProcessingRequest.request_headers=2, request_body=4; HttpHeaders
headers=1, end_of_stream=3; HttpBody body=1, end_of_stream=2; config/core/v3/base.pb.go HeaderMap headers=1,
HeaderValue key=1, value=2, raw_value=3). The picked endpoint comes back as the header and dynamic-metadata key the
runner names (pkg/epp/metadata/consts.go DestinationEndpointKey)."""
import json
import os
import subprocess
from pathlib import Path
from typing import Iterator, Optional

EXT_PROC_METHOD = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
DESTINATION_KEY = b"x-gateway-destination-endpoint"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _flag(number: int, value: bool) -> bytes:
    return _varint(number << 3) + _varint(int(value))


def headers_request(headers: dict[str, str]) -> bytes:
    values = b"".join(_field(1, _field(1, k.encode()) + _field(3, v.encode())) for k, v in headers.items())
    return _field(2, _field(1, values) + _flag(3, False))


def body_request(body: bytes) -> bytes:
    return _field(4, _field(1, body) + _flag(2, True))


def _fields(data: bytes) -> Optional[list[tuple[int, int, object]]]:
    """(number, wire type, value) of a protobuf message, or None where `data` is not one."""
    out: list[tuple[int, int, object]] = []
    at = 0
    try:
        while at < len(data):
            key, at = _read_varint(data, at)
            number, wire = key >> 3, key & 7
            value: object
            if wire == 0:
                value, at = _read_varint(data, at)
            elif wire == 2:
                size, at = _read_varint(data, at)
                if at + size > len(data):
                    return None
                value, at = data[at:at + size], at + size
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                value, at = data[at:at + size], at + size
            else:
                return None
            if number == 0:
                return None
            out.append((number, wire, value))
    except IndexError:
        return None
    return out


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def _strings(data: bytes, depth: int = 0) -> Iterator[list[bytes]]:
    """Every nested message's length-delimited fields, in order (a header value or a metadata Struct entry is a
    message whose first field is the key)."""
    fields = _fields(data) if depth < 12 else None
    if not fields:
        return
    yield [v for _, w, v in fields if w == 2 and isinstance(v, bytes)]
    for _, wire, value in fields:
        if wire == 2 and isinstance(value, bytes):
            yield from _strings(value, depth + 1)


def destinations(response: bytes) -> set[str]:
    """The endpoints a ProcessingResponse routes to: its header mutation's and dynamic metadata's
    x-gateway-destination-endpoint values."""
    found = set()
    for strings in _strings(response):
        if len(strings) >= 2 and strings[0] == DESTINATION_KEY:
            for value in strings[1:]:
                text = value.decode(errors="replace")
                inner = _fields(value)
                if inner and inner[0][1] == 2 and isinstance(inner[0][2], bytes):  # a Struct Value's string_value
                    text = inner[0][2].decode(errors="replace")
                if ":" in text:
                    found.add(text)
    return found


def route(port: int, model: str, prompt: str, timeout: float = 30) -> tuple[set[str], list[bytes]]:
    """Send one chat request's headers and body through the picker's ext_proc stream on 127.0.0.1:`port` (plaintext,
    as the gateway does with --secure-serving=false); the endpoints it picked and the raw responses."""
    import grpc
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": 4}).encode()
    headers = {":method": "POST", ":path": "/v1/chat/completions", ":authority": "twin", ":scheme": "http",
               "content-type": "application/json", "content-length": str(len(body))}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = channel.stream_stream(EXT_PROC_METHOD, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        responses = []
        for response in stream(iter([headers_request(headers), body_request(body)]), timeout=timeout):
            responses.append(response)
            if destinations(response) and len(responses) >= 2:
                break
    picked = set().union(*(destinations(r) for r in responses)) if responses else set()
    return picked, responses


def picker_args(rendered: list[str], config: Path, ports: dict[str, int]) -> list[str]:
    """The rendered picker args with the config file mapped to a local copy and each `--<flag>` of `ports` moved
    to a local port; `--secure-serving=false` because the test's gateway client speaks plaintext (in the cluster the
    gateway and picker use the runner's self-signed TLS)."""
    args = list(rendered)
    for flag, value in {"--config-file": str(config), **{f"--{k}": str(v) for k, v in ports.items()}}.items():
        if flag not in args:
            raise ValueError(f"the rendered picker args {rendered} have no {flag}")
        args[args.index(flag) + 1] = value
    return args + ["--secure-serving=false"]


def start_picker(runner: Path, args: list[str], kubeconfig: Path, directory: Path) -> subprocess.Popen:
    """The runner as a local process against the API server of `kubeconfig`; its log in <directory>/epp.log."""
    directory.mkdir(parents=True, exist_ok=True)
    log = open(directory / "epp.log", "wb")
    return subprocess.Popen([str(runner), *args], stdout=log, stderr=subprocess.STDOUT, cwd=directory,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory),
                                 "KUBECONFIG": str(kubeconfig)}, start_new_session=True)
